"""A person signs in with a real browser: Debian's chromium driven by Playwright.

The example site runs on pytest-django's live server; the provider is the real oidc-provider.
A screenshot of the signed-in page is saved to artifacts/ for a reviewer to look at.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect, sync_playwright

from django_sso.models import Identity
from tests.conftest import make_discovered_source
from tests.support.browser import ARTIFACTS, launch_chromium, register_live_client

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_source(live_server: Any, oidc_provider: Any, settings: Any) -> Any:
    """A source whose callback is the live server's, registered at the provider as a new client."""
    client_id = register_live_client(
        oidc_provider, live_server, settings, "browser", post_logout_redirect_uris=[f"{live_server.url}/"]
    )
    return make_discovered_source(oidc_provider, client_id=client_id)


def test_sign_in_and_out_in_a_real_browser(live_server: Any, browser_source: Any) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/")
            expect(page.locator("body")).to_contain_text("You are not signed in.")
            page.get_by_role("button", name="Sign in with Local provider").click()

            page.wait_for_url("http://127.0.0.1:*/interaction/**")
            page.fill("input[name=login]", "alice")
            page.fill("input[name=password]", "any password")
            page.click("#submit")

            page.wait_for_url(f"{live_server.url}/")
            expect(page.locator("#signed-in")).to_contain_text("Signed in as alice")
            shot = ARTIFACTS / "browser-signed-in.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0

            whoami = page.request.get(f"{live_server.url}/whoami/").json()
            assert whoami["authenticated"] is True
            assert whoami["email"] == "alice@example.com"

            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(f"{live_server.url}/")
            expect(page.locator("body")).to_contain_text("You are not signed in.")
        finally:
            browser.close()
    user = get_user_model().objects.get(username="alice")
    assert Identity.objects.get(user=user).source == browser_source
