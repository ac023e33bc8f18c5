"""Back-channel logout (BCL 1.0) through the endpoint: whose sessions end, with every session engine.

The token negatives (signature, claims, replay, delivery) are the LGO cases in
test_cases_logout.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from django_sso.models import SSOSession, TokenSet
from tests.conftest import make_source
from tests.fakeop import FakeOP
from tests.rejections import assert_no_secrets, log_text, provider_secrets

ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
]


FORM = "application/x-www-form-urlencoded"


def send_logout(token: str, slug: str = "honest") -> Any:
    """POST a logout token as a provider does: form-encoded, no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True).post(
        f"/sso/{slug}/backchannel-logout/", urlencode({"logout_token": token}), content_type=FORM
    )


def signed_in(browser: Client) -> bool:
    return browser.get("/whoami/").json()["authenticated"]


def sign_in_with_sid(sign_in: Any, op: FakeOP, sid: str, **kwargs: Any) -> Client:
    browser = kwargs.pop("browser", None) or Client()
    op.scenario["id_token"] = {"sid": sid}
    assert sign_in(browser=browser, **kwargs).response.status_code == 303
    return browser


@pytest.mark.parametrize("engine", ENGINES)
def test_a_logout_by_sub_ends_every_session_of_the_person(settings, op, source, sign_in, engine):
    settings.SESSION_ENGINE = engine
    laptop = sign_in_with_sid(sign_in, op, "sid-laptop")
    phone = sign_in_with_sid(sign_in, op, "sid-phone")
    bob = sign_in_with_sid(sign_in, op, "sid-bob", user="bob")
    response = send_logout(op.logout_token("alice"))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.content == b""
    assert not signed_in(laptop)
    assert not signed_in(phone)
    assert signed_in(bob)
    assert list(SSOSession.objects.values_list("sid", flat=True)) == ["sid-bob"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_logout_by_sid_ends_that_session_only(settings, op, source, sign_in, engine):
    settings.SESSION_ENGINE = engine
    laptop = sign_in_with_sid(sign_in, op, "sid-laptop")
    phone = sign_in_with_sid(sign_in, op, "sid-phone")
    assert send_logout(op.logout_token(None, sid="sid-laptop")).status_code == 200
    assert not signed_in(laptop)
    assert signed_in(phone)


def test_a_logout_with_sub_and_sid_needs_both_to_match(op, source, sign_in):
    laptop = sign_in_with_sid(sign_in, op, "sid-laptop")
    bob = sign_in_with_sid(sign_in, op, "sid-bob", user="bob")
    # bob's sid with alice's sub names no session: nothing ends, and that is a success.
    assert send_logout(op.logout_token("alice", sid="sid-bob")).status_code == 200
    assert signed_in(laptop) and signed_in(bob)
    assert send_logout(op.logout_token("alice", sid="sid-laptop")).status_code == 200
    assert not signed_in(laptop) and signed_in(bob)


def test_an_unknown_person_is_a_success_with_nothing_to_do(op, source, sign_in, sso_log):
    laptop = sign_in_with_sid(sign_in, op, "sid-laptop")
    assert send_logout(op.logout_token("bob")).status_code == 200
    assert signed_in(laptop)
    assert "sso.backchannel.logout source=honest sessions=0" in sso_log.text


def test_tokens_without_offline_access_go_with_the_last_session(db, op, sign_in):
    make_source(op, "honest", keep_refresh_token=True)
    sign_in_with_sid(sign_in, op, "sid-laptop")
    assert TokenSet.objects.exists()
    assert send_logout(op.logout_token("alice")).status_code == 200
    assert not TokenSet.objects.exists()


def test_offline_access_tokens_outlive_the_sessions(db, op, sign_in):
    make_source(op, "honest", keep_refresh_token=True, scopes="openid email offline_access")
    sign_in_with_sid(sign_in, op, "sid-laptop")
    assert send_logout(op.logout_token("alice")).status_code == 200
    assert not SSOSession.objects.exists()
    assert TokenSet.objects.exists()


def test_a_disabled_source_can_still_end_its_sessions(op, source, sign_in):
    laptop = sign_in_with_sid(sign_in, op, "sid-laptop")
    source.enabled = False
    source.save()
    assert send_logout(op.logout_token("alice")).status_code == 200
    assert not signed_in(laptop)


def test_an_unknown_source_is_refused(op, source):
    assert send_logout(op.logout_token("alice"), slug="nope").status_code == 400


def test_nothing_secret_is_logged(op, source, sign_in, sso_log):
    sign_in_with_sid(sign_in, op, "sid-laptop")
    good = op.logout_token("alice")
    send_logout(good)
    send_logout(good)  # replay: refused and logged
    send_logout(op.logout_token("alice", header={"alg": "HS256"}))
    assert_no_secrets(log_text(sso_log), {good, *provider_secrets(op)})
