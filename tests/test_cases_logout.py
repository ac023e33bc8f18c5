"""RP-CASES J and K: logout (LGO-01..10) and refresh tokens (RT-01..02), one test per case."""

from __future__ import annotations

import re
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from django_sso import tokens
from django_sso.exceptions import ReauthenticationRequired
from django_sso.logout import LOGOUT_STATE_KEY
from django_sso.models import Identity, SSOSession, TokenSet
from tests.conftest import make_source
from tests.fakeop import DROP, FakeOP, SigningKey, hmac_signer, pooled_rsa_key, sign_compact
from tests.rejections import assert_reason_logged
from tests.test_tokens import expire

FORM = "application/x-www-form-urlencoded"
AFTER_LOGOUT = "https://app.example.com/after-sign-out/"


def send_logout(token: str, slug: str = "honest") -> Any:
    return Client(enforce_csrf_checks=True).post(
        f"/sso/{slug}/backchannel-logout/", urlencode({"logout_token": token}), content_type=FORM
    )


def signed_in(browser: Client) -> bool:
    return browser.get("/whoami/").json()["authenticated"]


def session_exists(key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


def sign_in_as(sign_in: Any, op: FakeOP, *, sid: str = "op-sid-1", **kwargs: Any) -> Client:
    browser = kwargs.pop("browser", None) or Client()
    op.scenario["id_token"] = {**op.scenario.get("id_token", {}), "sid": sid}
    assert sign_in(browser=browser, **kwargs).response.status_code == 303
    return browser


def csrf_token_of(page: Any) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


@pytest.fixture
def logging_out(db: Any, op: FakeOP) -> Any:
    """A source that signs out at the provider, with a configured post-logout redirect URI."""
    return make_source(op, "honest", logout_at_provider=True, post_logout_redirect_uri=AFTER_LOGOUT)


# ---- J. Logout --------------------------------------------------------------------------------


@pytest.mark.case("LGO-01")
def test_lgo_01_get_asks_post_signs_out_here_first_then_at_the_provider(client, op, logging_out, sign_in):
    assert sign_in().response.status_code == 303
    id_token = SSOSession.objects.get().id_token
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = client.cookies
    old_key = browser.session.session_key

    # A cross-site GET (a link, an <img>) only shows the confirmation.
    page = browser.get("/sso/logout/", HTTP_SEC_FETCH_SITE="cross-site")
    assert page.status_code == 200
    assert signed_in(browser)
    # A POST without the CSRF token is refused and signs nobody out.
    assert browser.post("/sso/logout/").status_code == 403
    assert signed_in(browser)

    response = browser.post("/sso/logout/", {"csrfmiddlewaretoken": csrf_token_of(page)})
    assert response.status_code == 303
    # The local session ended before the browser is sent anywhere.
    assert not session_exists(old_key)
    assert not SSOSession.objects.exists()
    assert browser.session.session_key != old_key
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == op.url("/end_session")
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params == {
        "id_token_hint": id_token,
        "client_id": op.client_id,
        "post_logout_redirect_uri": AFTER_LOGOUT,
        "state": browser.session[LOGOUT_STATE_KEY]["state"],
    }
    assert len(params["state"]) >= 43
    assert "no-store" in response["Cache-Control"]
    assert not signed_in(browser)


@pytest.mark.case("LGO-02")
@pytest.mark.parametrize("returned_state", ["other-state", DROP, "attacker"])
def test_lgo_02_a_foreign_or_missing_state_shows_a_neutral_page(
    client, op, logging_out, sign_in, returned_state
):
    assert sign_in(next_url="/whoami/").response.status_code == 303
    if returned_state == "attacker":
        # A state the provider issued to another browser's sign-out.
        other = sign_in_as(sign_in, op)
        end_url = other.post("/sso/logout/")["Location"]
        returned_state = parse_qs(urlsplit(end_url).query)["state"][0]
    response = client.post("/sso/logout/", {"next": "/whoami/"})
    op.scenario["end_session"] = {"state": returned_state}
    back = urlsplit(op.end_session(response["Location"]))
    assert back.path == urlsplit(AFTER_LOGOUT).path
    page = client.get(f"/sso/logged-out/?{back.query}")
    assert page.status_code == 200
    assert "You are signed out" in page.content.decode()
    assert "alice" not in page.content.decode()
    assert "no-store" in page["Cache-Control"]
    assert not signed_in(client)


@pytest.mark.case("LGO-03")
@pytest.mark.parametrize("variant", ["alg_none", "hs256_client_secret", "key_not_in_jwks"])
def test_lgo_03_unsigned_or_wrongly_signed_logout_tokens_are_refused(op, source, sign_in, sso_log, variant):
    browser = sign_in_as(sign_in, op)
    claims = op.logout_claims("alice", sid="op-sid-1")
    if variant == "alg_none":
        token = sign_compact({"alg": "none", "typ": "logout+jwt"}, claims, lambda data: b"")
    elif variant == "hs256_client_secret":
        header = {"alg": "HS256", "typ": "logout+jwt", "kid": op.keys[0].kid}
        token = sign_compact(header, claims, hmac_signer(op.client_secret.encode()))
    else:
        token = op.mint(claims, {"typ": "logout+jwt"}, key=SigningKey(op.keys[0].kid, pooled_rsa_key(2)))
    response = send_logout(token)
    assert response.status_code == 400
    assert signed_in(browser)
    assert SSOSession.objects.count() == 1
    code = {
        "alg_none": "sso.logout_token.alg_not_allowed",
        "hs256_client_secret": "sso.logout_token.alg_not_allowed",
        "key_not_in_jwks": "sso.logout_token.bad_signature",
    }[variant]
    assert_reason_logged(sso_log, code)


@pytest.mark.case("LGO-04")
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"events": DROP}, "sso.logout_token.missing_claim"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "sso.logout_token.no_event"),
        (
            {"events": {"http://schemas.openid.net/event/backchannel-logout": "yes"}},
            "sso.logout_token.bad_event",
        ),
        ({"events": ["http://schemas.openid.net/event/backchannel-logout"]}, "sso.logout_token.no_event"),
        ({"nonce": "n-0S6_WzA2Mj"}, "sso.logout_token.nonce_present"),
    ],
)
def test_lgo_04_events_must_be_the_backchannel_event_and_nonce_absent(
    op, source, sign_in, sso_log, overrides, code
):
    browser = sign_in_as(sign_in, op)
    assert send_logout(op.logout_token("alice", **overrides)).status_code == 400
    assert signed_in(browser)
    assert_reason_logged(sso_log, code)


@pytest.mark.case("LGO-05")
@pytest.mark.parametrize("variant", ["aud_other_client", "iss_other_provider", "iss_unknown"])
def test_lgo_05_wrong_audience_or_issuer_is_refused(
    op, attacker_op, source, attacker_source, sign_in, variant
):
    browser = sign_in_as(sign_in, op)
    overrides = {
        "aud_other_client": {"aud": "another-client"},
        "iss_other_provider": {"iss": attacker_op.issuer},
        "iss_unknown": {"iss": "https://unknown.example"},
    }[variant]
    assert send_logout(op.logout_token("alice", **overrides)).status_code == 400
    assert signed_in(browser)


@pytest.mark.case("LGO-06")
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"sub": DROP}, "sso.logout_token.no_sub_or_sid"),
        ({"exp": DROP}, "sso.logout_token.missing_claim"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 3700}, "sso.logout_token.expired"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "sso.logout_token.not_yet_valid"),
        ({"iat": int(time.time()) - 3600, "exp": int(time.time()) + 3600}, "sso.logout_token.too_old"),
        ({"jti": DROP}, "sso.logout_token.missing_claim"),
        ({"jti": ""}, "sso.logout_token.bad_jti"),
        ({"sid": 42}, "sso.logout_token.bad_sid"),
        ("replay", "sso.logout_token.replayed"),
    ],
)
def test_lgo_06_subject_times_and_jti_are_required_and_replay_is_refused(
    op, source, sign_in, sso_log, overrides, code
):
    browser = sign_in_as(sign_in, op)
    if overrides == "replay":
        # Choice (documented): a replayed token is 400, even after the first use succeeded.
        token = op.logout_token("alice")
        assert send_logout(token).status_code == 200
        browser = sign_in_as(sign_in, op)
        assert send_logout(token).status_code == 400
    else:
        assert send_logout(op.logout_token("alice", **overrides)).status_code == 400
    assert signed_in(browser)
    assert_reason_logged(sso_log, code)


@pytest.mark.case("LGO-07")
@pytest.mark.parametrize(
    ("typ", "accepted"), [("at+jwt", False), ("JWT", True), (DROP, True), ("logout+jwt", True)]
)
def test_lgo_07_id_tokens_and_other_jwt_types_are_not_logout_tokens(
    op, source, sign_in, sso_log, typ, accepted
):
    browser = sign_in_as(sign_in, op)
    # An ID token (nonce, no events, typ JWT) as the logout token.
    id_token = op.mint(op.id_claims("alice", nonce="n-0S6_WzA2Mj", sid="op-sid-1"))
    assert send_logout(id_token).status_code == 400
    assert signed_in(browser)
    # Explicit typ policy: logout+jwt, JWT or none; anything else is refused.
    response = send_logout(op.logout_token("alice", header={"typ": typ}))
    assert response.status_code == (200 if accepted else 400)
    assert signed_in(browser) is not accepted
    if not accepted:
        assert_reason_logged(sso_log, "sso.logout_token.wrong_type")


@pytest.mark.case("LGO-08")
def test_lgo_08_a_valid_token_ends_sessions_by_sid_then_by_sub_and_only_a_form_post_counts(db, op, sign_in):
    make_source(op, "honest", keep_refresh_token=True)
    laptop = sign_in_as(sign_in, op, sid="sid-laptop")
    phone = sign_in_as(sign_in, op, sid="sid-phone")
    tablet = sign_in_as(sign_in, op, sid="sid-tablet")
    url = "/sso/honest/backchannel-logout/"
    strict = Client(enforce_csrf_checks=True)
    # Wrong method or format, or no (or two) logout_token: 400, nothing ends.
    token = op.logout_token(None, sid="sid-laptop")
    bad = [
        strict.get(f"{url}?{urlencode({'logout_token': token})}"),
        strict.post(url, {"logout_token": token}),  # multipart
        strict.post(url, f'{{"logout_token": "{token}"}}', content_type="application/json"),
        strict.post(url, "", content_type=FORM),
        strict.post(url, urlencode([("logout_token", token), ("logout_token", token)]), content_type=FORM),
        strict.put(url, urlencode({"logout_token": token}), content_type=FORM),
    ]
    assert [r.status_code for r in bad] == [400] * 6
    assert signed_in(laptop) and signed_in(phone) and signed_in(tablet)
    # By sid: that session only. CSRF-exempt: no token, no cookie.
    response = send_logout(op.logout_token(None, sid="sid-laptop"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert not signed_in(laptop)
    assert signed_in(phone) and signed_in(tablet)
    assert TokenSet.objects.exists()
    # By sub only: every remaining session, and the tokens (no offline_access) with them.
    assert send_logout(op.logout_token("alice")).status_code == 200
    assert not signed_in(phone) and not signed_in(tablet)
    assert not SSOSession.objects.exists()
    assert not TokenSet.objects.exists()


@pytest.mark.case("LGO-09")
def test_lgo_09_another_providers_valid_token_does_not_touch_this_providers_sessions(
    op, attacker_op, source, attacker_source, sign_in
):
    # Both providers know an "alice-sub"; the sessions belong to the honest provider's alice.
    browser = sign_in_as(sign_in, op, sid="shared-sid")
    token = attacker_op.logout_token("alice", sid="shared-sid")
    # At the attacker's own endpoint the token is valid, but names none of its sessions.
    assert send_logout(token, slug="attacker").status_code == 200
    # At the honest endpoint it fails the issuer and key checks.
    assert send_logout(attacker_op.logout_token("alice", sid="shared-sid"), slug="honest").status_code == 400
    assert signed_in(browser)
    assert SSOSession.objects.count() == 1


@pytest.mark.case("LGO-10")
@pytest.mark.parametrize(
    ("params", "ends"),
    [
        ({"iss": "ISSUER", "sid": "op-sid-1"}, True),
        ({"iss": "https://op.example/attacker", "sid": "op-sid-1"}, False),
        ({"iss": "ISSUER", "sid": "op-sid-2"}, False),
        ({"iss": "ISSUER"}, False),
        ({"sid": "op-sid-1"}, False),
        ({}, False),
    ],
)
def test_lgo_10_front_channel_logout_ends_only_the_matching_session(op, source, sign_in, params, ends):
    browser = sign_in_as(sign_in, op, sid="op-sid-1")
    query = {k: (op.issuer if v == "ISSUER" else v) for k, v in params.items()}
    response = browser.get(f"/sso/honest/frontchannel-logout/?{urlencode(query)}")
    assert response.status_code == 200
    assert response.content == b""  # no user data on the page
    assert "no-store" in response["Cache-Control"]
    assert "X-Frame-Options" not in response  # the provider loads it in an iframe
    assert signed_in(browser) is not ends
    # Another source's path never ends this source's session.
    if ends:
        return
    other = browser.get(
        f"/sso/attacker/frontchannel-logout/?{urlencode({'iss': op.issuer, 'sid': 'op-sid-1'})}"
    )
    assert other.status_code == 200
    assert signed_in(browser)


# ---- K. Refresh tokens ------------------------------------------------------------------------

KEEP = {"keep_refresh_token": True, "scopes": "openid email profile offline_access"}


@pytest.mark.case("RT-01")
@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("iss", "sso.id_token.iss_mismatch"),
        ("sub", "sso.id_token.refresh_sub_changed"),
        ("aud", "sso.id_token.refresh_aud_changed"),
        ("azp_added", "sso.id_token.refresh_azp_changed"),
        ("auth_time", "sso.id_token.refresh_auth_time_changed"),
        ("bad_signature", "sso.id_token.bad_signature"),
    ],
)
def test_rt_01_a_refreshed_id_token_that_differs_ends_everything(
    db, op, attacker_op, sign_in, sso_log, variant, code
):
    source = make_source(op, "honest", trusted_audiences="partner-api", **KEEP)
    make_source(attacker_op, "attacker")
    op.scenario["id_token"] = {"auth_time": int(time.time()) - 60}
    laptop = sign_in_as(sign_in, op, sid="sid-laptop")
    phone = sign_in_as(sign_in, op, sid="sid-phone")
    identity = Identity.objects.select_related("user").get()
    claims_before = dict(identity.claims)
    op.scenario["refresh"] = {
        "iss": {"id_token": {"iss": attacker_op.issuer}},
        "sub": {"id_token": {"sub": "mallory-sub", "email": "mallory@example.com"}},
        "aud": {"id_token": {"aud": [op.client_id, "partner-api"]}},
        "azp_added": {"id_token": {"azp": op.client_id}},
        "auth_time": {"id_token": {"auth_time": int(time.time())}},
        "bad_signature": {"key": SigningKey(op.keys[0].kid, pooled_rsa_key(2))},
    }[variant]
    expire(identity)
    with pytest.raises(ReauthenticationRequired) as raised:
        tokens.get_access_token(identity.user, source)
    assert raised.value.code == code
    assert_reason_logged(sso_log, code)
    # Discarded: no tokens, no sessions, nothing taken from the answer.
    assert not TokenSet.objects.exists()
    assert not signed_in(laptop) and not signed_in(phone)
    assert not SSOSession.objects.exists()
    identity.refresh_from_db()
    assert identity.claims == claims_before
    assert get_user_model().objects.get().email == "alice@example.com"


@pytest.mark.case("RT-02")
def test_rt_02_rotation_is_followed_reuse_ends_it_and_only_granted_scopes_are_asked(db, op, sign_in, sso_log):
    source = make_source(op, "honest", **KEEP)
    op.scenario["token"] = {"scope": "openid email offline_access"}  # narrower than requested
    browser = sign_in_as(sign_in, op)
    identity = Identity.objects.select_related("user").get()
    first = identity.token_set.refresh_token
    expire(identity)
    tokens.get_access_token(identity.user, source)
    second = TokenSet.objects.get().refresh_token
    expire(identity)
    tokens.get_access_token(identity.user, source)
    third = TokenSet.objects.get().refresh_token
    assert len({first, second, third}) == 3
    sent = [(r.form["refresh_token"], r.form["scope"]) for r in op.refresh_requests()]
    assert sent == [(first, "openid email offline_access"), (second, "openid email offline_access")]
    # A stale worker's view: the spent refresh token again. The provider detects reuse.
    TokenSet.objects.update(refresh_token=second)
    expire(identity)
    with pytest.raises(ReauthenticationRequired) as raised:
        tokens.get_access_token(identity.user, source)
    assert raised.value.code == "sso.refresh.invalid_grant"
    assert not TokenSet.objects.exists()
    for _ in range(3):  # never retried, with this or any token
        with pytest.raises(ReauthenticationRequired):
            tokens.get_access_token(identity.user, source)
    assert len(op.refresh_requests()) == 3
    assert_reason_logged(sso_log, "sso.refresh.invalid_grant")
    assert signed_in(browser)  # no re-validation configured: the session itself goes on
    # Concurrent refreshes store one rotation atomically: tests/test_tokens.py
    # test_concurrent_requests_make_one_refresh (PostgreSQL) and its twin in test_lifecycle_e2e.py.
