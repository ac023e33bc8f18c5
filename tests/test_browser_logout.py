"""RP-initiated logout in a real browser: Debian's chromium driven by Playwright.

Sign in on the example site (live server) through the real oidc-provider, sign out: the site ends
its session, sends the browser to the provider's end-session page, the person confirms, and the
provider sends it back to /sso/logged-out/, which leads home. The provider's session is gone too:
the next sign-in asks for the password again. A screenshot lands in artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from django_sso.models import SSOSession
from tests.conftest import make_discovered_source
from tests.support.browser import ARTIFACTS, launch_chromium, register_live_client

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def logout_source(live_server: Any, oidc_provider: Any, settings: Any) -> Any:
    """A source that signs out at the provider, registered there with the live server's URLs."""
    client_id = register_live_client(
        oidc_provider,
        live_server,
        settings,
        "browser-logout",
        post_logout_redirect_uris=[f"{live_server.url}/sso/logged-out/"],
    )
    return make_discovered_source(oidc_provider, client_id=client_id, logout_at_provider=True)


def test_sign_out_at_the_provider_and_back_in_a_real_browser(live_server: Any, logout_source: Any) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/")
            page.get_by_role("button", name="Sign in with Local provider").click()
            page.wait_for_url("http://127.0.0.1:*/interaction/**")
            page.fill("input[name=login]", "alice")
            page.fill("input[name=password]", "any password")
            page.click("#submit")
            page.wait_for_url(f"{live_server.url}/")
            expect(page.locator("#signed-in")).to_contain_text("Signed in as alice")

            page.get_by_role("button", name="Sign out").click()
            # The provider's confirmation page; the site's own session has already ended.
            page.wait_for_url("http://127.0.0.1:*/session/end**")
            assert page.request.get(f"{live_server.url}/whoami/").json()["authenticated"] is False
            page.click("#logout-yes")

            # Back through /sso/logged-out/?state=... (the state this browser's session awaits) home.
            page.wait_for_url(f"{live_server.url}/")
            expect(page.locator("body")).to_contain_text("You are not signed in.")
            shot = ARTIFACTS / "browser-signed-out.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0

            # Signed out at the provider too: signing in again shows its login form.
            page.get_by_role("button", name="Sign in with Local provider").click()
            page.wait_for_url("http://127.0.0.1:*/interaction/**")
            expect(page.locator("input[name=login]")).to_be_visible()
        finally:
            browser.close()
    # (The ORM cannot run inside Playwright's event loop, so the database is checked here.)
    assert not SSOSession.objects.exists()
