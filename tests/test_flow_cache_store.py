"""``DJANGO_SSO_FLOW_STORE = "cache"``: flows in Django's cache, bound to the browser by a cookie.

The same promises as the session store (AZR-01/02/08, ACC-07), and one more: an anonymous
sign-in writes no session before login.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.checks import run_checks
from django.test import Client, RequestFactory

from django_sso.internal import flow as flows
from django_sso.internal.flow import COOKIE_NAME
from tests.rejections import assert_rejected, begin, calls, local, query_of

DB_SESSIONS = "django.contrib.sessions.backends.db"


@pytest.fixture(autouse=True)
def cache_store(settings: Any) -> None:
    settings.DJANGO_SSO_FLOW_STORE = "cache"
    settings.SESSION_ENGINE = DB_SESSIONS  # so that a written session is a row to count


def cached_flow(client: Client, state: str) -> dict[str, Any] | None:
    """Return the flow the cache holds for ``client``'s binding cookie and ``state``."""
    binding = client.cookies[COOKIE_NAME].value
    return caches["default"].get(flows._cache_key(binding, state))


def test_a_whole_sign_in_works(sign_in, source):
    """With the fake provider: login start, provider, callback, signed in at ``next``."""
    result = sign_in(next_url="/shop/")
    assert result.response.status_code == 303
    assert result.response["Location"] == "/shop/"
    assert "_auth_user_id" in result.response.wsgi_request.session


def test_an_oauth1_sign_in_works_and_its_token_is_single_use(client, oauth1_source, oauth1_sign_in):
    """OAuth 1.0a flows are stored under the temporary token: the same store, the same binding."""
    result = oauth1_sign_in()
    assert result.response.status_code == 303
    replay = Client()
    replay.cookies[COOKIE_NAME] = result.start.cookies[COOKIE_NAME].value
    assert replay.get(local(result.callback_url)).context["code"] == "sso.oauth1.unknown_token"


def test_starting_a_sign_in_writes_no_session(client, op, source):
    response = client.post("/sso/honest/login/")
    assert response.status_code == 302
    assert COOKIE_NAME in response.cookies
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies
    assert Session.objects.count() == 0
    assert cached_flow(client, query_of(response["Location"])["state"]) is not None


@pytest.mark.parametrize("secure", [False, True])
def test_the_binding_cookie_flags(client, op, source, secure):
    response = client.post("/sso/honest/login/", secure=secure)
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert bool(cookie["secure"]) is secure
    assert cookie["max-age"] == 600
    assert len(cookie.value) == 43  # 256 bits, base64url


def test_several_tabs_share_one_binding(client, op, source):
    first = begin(client)
    binding = client.cookies[COOKIE_NAME].value
    second = begin(client)
    assert client.cookies[COOKIE_NAME].value == binding
    assert cached_flow(client, query_of(first)["state"]) is not None
    assert cached_flow(client, query_of(second)["state"]) is not None
    assert client.get(local(op.authorize(second))).status_code == 303


@pytest.mark.case("AZR-02")
def test_a_state_is_refused_when_replayed(client, op, source, sso_log):
    url = begin(client)
    binding = client.cookies[COOKIE_NAME].value
    callback_url = op.authorize(url)
    assert client.get(local(callback_url)).status_code == 303
    replay = Client()
    replay.cookies[COOKIE_NAME] = binding  # the cookie the sign-in used, kept by an attacker
    response = replay.get(local(callback_url))
    assert_rejected(
        response,
        replay,
        sso_log,
        status=400,
        code="sso.state.unknown",
        ops=[op],
        token_calls=1,
        userinfo_calls=1,
    )
    assert len(calls(op, "/token")) == 1


@pytest.mark.case("AZR-01")
@pytest.mark.case("AZR-02")
def test_a_state_from_another_browser_is_refused(client, op, source, sso_log):
    url = begin(client)
    callback_url = op.authorize(url)
    attacker = Client()
    begin(attacker)  # a binding cookie of its own
    response = attacker.get(local(callback_url))
    assert_rejected(response, attacker, sso_log, status=400, code="sso.state.unknown", ops=[op])
    # Keyed by browser and state: the victim's flow was neither found nor consumed.
    assert cached_flow(client, query_of(url)["state"]) is not None
    assert client.get(local(callback_url)).status_code == 303


@pytest.mark.case("AZR-08")
def test_a_callback_without_the_cookie_says_session_expired(client, op, source, sso_log):
    url = begin(client)
    callback_url = op.authorize(url)
    cookieless = Client()
    response = cookieless.get(local(callback_url))
    assert_rejected(response, cookieless, sso_log, status=400, code="sso.state.unknown", ops=[op])
    assert "session expired" in response.content.decode().lower()
    assert cached_flow(client, query_of(url)["state"]) is not None


def test_a_malformed_cookie_is_not_a_binding(client, op, source, sso_log):
    callback_url = op.authorize(begin(client))
    client.cookies[COOKIE_NAME] = "not-a-binding"
    response = client.get(local(callback_url))
    assert_rejected(response, client, sso_log, status=400, code="sso.state.unknown", ops=[op])


@pytest.mark.case("AZR-02")
def test_two_concurrent_takes_of_one_state_cannot_both_win(client, op, source, monkeypatch):
    url = begin(client)
    state = query_of(url)["state"]
    request = RequestFactory().get("/", HTTP_COOKIE=f"{COOKIE_NAME}={client.cookies[COOKIE_NAME].value}")
    record = cached_flow(client, state)
    assert flows.take(request, state).state == state
    # The second request read the entry before the first deleted it: its delete finds nothing.
    cache = caches["default"]
    monkeypatch.setattr(cache, "get", lambda key, default=None, version=None: record)
    with pytest.raises(flows.SessionExpired):
        flows.take(request, state)


@pytest.mark.case("AZR-02")
def test_the_flow_is_gone_after_a_502_and_no_session_was_written(client, op, source, sso_log):
    op.scenario["respond"] = {"/token": (500, {}, b"")}
    url = begin(client)
    callback_url = op.authorize(url)
    response = client.get(local(callback_url))
    # Before assert_rejected: the test client's ``session`` property creates a session.
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies
    assert Session.objects.count() == 0
    assert cached_flow(client, query_of(url)["state"]) is None
    assert_rejected(response, client, sso_log, status=502, code="sso.token.status", ops=[op], token_calls=1)
    op.scenario["respond"] = {}
    again = client.get(local(callback_url))
    assert again.status_code == 400
    assert again.context["code"] == "sso.state.unknown"
    assert len(calls(op, "/token")) == 1


@pytest.mark.case("ACC-07")
def test_acc_07_login_starts_a_new_empty_session(op, source):
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    store["planted_by_attacker"] = "value"
    store.save()
    planted = store.session_key
    victim = Client()
    victim.cookies[django_settings.SESSION_COOKIE_NAME] = planted
    pending = begin(victim)  # another tab, left pending
    url = begin(victim, next="/shop/")
    response = victim.get(local(op.authorize(url)))
    assert response.status_code == 303
    assert response["Location"] == "/shop/"
    session = victim.session
    assert session.session_key != planted
    assert "_auth_user_id" in session
    assert "planted_by_attacker" not in session
    assert not Session.objects.filter(session_key=planted).exists()
    # The binding cookie is dropped with the pre-login session: the other tab's flow is not found.
    assert response.cookies[COOKIE_NAME].value == ""
    assert victim.get(local(op.authorize(pending))).context["code"] == "sso.state.unknown"
    attacker = Client()
    attacker.cookies[django_settings.SESSION_COOKIE_NAME] = planted
    assert attacker.get("/whoami/").json()["authenticated"] is False


def check_ids() -> list[str]:
    return [message.id for message in run_checks(tags=["django_sso"])]


LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"
REDIS = "django.core.cache.backends.redis.RedisCache"


@pytest.mark.parametrize(
    ("backend", "debug", "expected"),
    [
        (LOCMEM, False, ["django_sso.W007"]),
        (LOCMEM, True, []),
        (DUMMY, True, ["django_sso.W007"]),
        (REDIS, False, []),
    ],
)
def test_w007_a_cache_store_needs_a_shared_cache(settings, backend, debug, expected):
    settings.DJANGO_SSO_REDIRECT_URI_BASE = "https://app.example.com"
    settings.DEBUG = debug
    settings.CACHES = {**settings.CACHES, "flows": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:1"}}
    settings.DJANGO_SSO_CACHE_ALIAS = "flows"
    messages = run_checks(tags=["django_sso"])
    assert [m.id for m in messages] == expected
    assert all(m.hint for m in messages)


def test_w007_is_quiet_for_the_session_store(settings):
    settings.DJANGO_SSO_REDIRECT_URI_BASE = "https://app.example.com"
    settings.DJANGO_SSO_FLOW_STORE = "session"
    assert check_ids() == []


def test_e007_an_unknown_flow_store(settings):
    settings.DJANGO_SSO_REDIRECT_URI_BASE = "https://app.example.com"
    settings.DJANGO_SSO_FLOW_STORE = "database"
    messages = run_checks(tags=["django_sso"])
    assert [m.id for m in messages] == ["django_sso.E007"]
    assert messages[0].hint
