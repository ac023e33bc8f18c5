"""The Identity admin shows the sessions a sign-in opened and ends them; tokens never show."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_sso.models import Identity, SSOSession, TokenSet
from tests.conftest import make_source
from tests.rejections import assert_no_secrets, provider_secrets


def change_url(identity: Identity) -> str:
    return f"/admin/django_sso/identity/{identity.pk}/change/"


def signed_in(browser: Client) -> bool:
    return browser.get("/whoami/").json()["authenticated"]


@pytest.fixture
def two_browsers(db: Any, op: Any, sign_in: Any) -> tuple[Client, Client]:
    make_source(op, "honest", keep_refresh_token=True, scopes="openid email offline_access")
    laptop, phone = Client(), Client()
    op.scenario["id_token"] = {"sid": "sid-laptop"}
    sign_in(browser=laptop)
    op.scenario["id_token"] = {"sid": "sid-phone"}
    sign_in(browser=phone)
    return laptop, phone


def inline_data(identity: Identity, delete: set[int]) -> dict[str, Any]:
    records = list(identity.sso_sessions.all())
    data: dict[str, Any] = {
        "user": identity.user_id,
        "sso_sessions-TOTAL_FORMS": str(len(records)),
        "sso_sessions-INITIAL_FORMS": str(len(records)),
        "sso_sessions-MIN_NUM_FORMS": "0",
        "sso_sessions-MAX_NUM_FORMS": "1000",
    }
    for index, record in enumerate(records):
        data[f"sso_sessions-{index}-id"] = str(record.pk)
        data[f"sso_sessions-{index}-identity"] = str(identity.pk)
        if record.pk in delete:
            data[f"sso_sessions-{index}-DELETE"] = "on"
    return data


def test_the_identity_page_lists_sessions_and_tokens_without_secrets(admin_client, op, two_browsers):
    identity = Identity.objects.get()
    page = admin_client.get(change_url(identity))
    html = page.content.decode()
    assert page.status_code == 200
    assert "sid-laptop" in html and "sid-phone" in html
    assert "with a refresh token" in html
    secrets = {*provider_secrets(op), *(r.session_key for r in SSOSession.objects.all())}
    assert_no_secrets(html, secrets, where="admin page")
    listing = admin_client.get("/admin/django_sso/identity/").content.decode()
    assert_no_secrets(listing, secrets, where="admin list")


def test_deleting_an_inline_row_ends_that_session(admin_client, two_browsers):
    laptop, phone = two_browsers
    identity = Identity.objects.get()
    record = identity.sso_sessions.get(sid="sid-laptop")
    response = admin_client.post(change_url(identity), inline_data(identity, delete={record.pk}))
    assert response.status_code == 302, response.content
    assert not signed_in(laptop)
    assert signed_in(phone)
    assert list(SSOSession.objects.values_list("sid", flat=True)) == ["sid-phone"]


def test_the_action_ends_every_session_of_the_selected_identities(admin_client, two_browsers):
    laptop, phone = two_browsers
    identity = Identity.objects.get()
    response = admin_client.post(
        "/admin/django_sso/identity/",
        {"action": "end_sessions", "_selected_action": [identity.pk]},
        follow=True,
    )
    assert "2 sessions ended." in response.content.decode()
    assert not signed_in(laptop) and not signed_in(phone)
    assert not SSOSession.objects.exists()
    assert TokenSet.objects.exists()  # granted offline_access: they outlive the sessions
