"""Session and token lifecycle against the real provider (npm oidc-provider on loopback).

Refresh with rotation, a revoked refresh token signing the user out, RP-initiated logout, the
provider's own back-channel logout reaching the site (pytest-django's live server), real logout
tokens replayed or tampered with, and one token request for many concurrent refreshes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.db import connection
from django.test import Client

from django_sso import sessions, tokens
from django_sso.exceptions import ReauthenticationRequired
from django_sso.internal import id_token, oauth2
from django_sso.models import Identity, SSOSession, TokenSet
from tests.conftest import E2E_CLIENT_ID, E2E_CLIENT_SECRET, make_discovered_source
from tests.support.op_server import sign_in_with_requests, sign_out_with_requests
from tests.test_tokens import expire

pytestmark = pytest.mark.e2e

OFFLINE = "openid email profile offline_access"
ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
]
_counter = iter(range(1, 1_000_000))


def register(oidc_provider: Any, slug: str, **metadata: Any) -> str:
    """Register a fresh client for ``slug`` at the provider; return its id."""
    client_id = f"lifecycle-{slug}-{next(_counter)}-{int(time.time() * 1000)}"
    oidc_provider.add_client(
        {
            "client_id": client_id,
            "client_secret": E2E_CLIENT_SECRET,
            "redirect_uris": [f"http://testserver/sso/{slug}/callback/"],
            "post_logout_redirect_uris": ["http://testserver/sso/logged-out/"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"],
            **metadata,
        }
    )
    return client_id


def source_for(oidc_provider: Any, slug: str = "local", metadata: dict | None = None, **fields: Any) -> Any:
    client_id = register(oidc_provider, slug, **(metadata or {}))
    return make_discovered_source(oidc_provider, slug=slug, client_id=client_id, **fields)


def signed_in(browser: Client) -> bool:
    return browser.get("/whoami/").json()["authenticated"]


def userinfo_accepts(oidc_provider: Any, access_token: str) -> bool:
    response = requests.get(
        oidc_provider.url("/me"), headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    return response.status_code == 200 and response.json()["sub"] == "alice-sub"


def refresh_at_provider(oidc_provider: Any, client_id: str, refresh_token: str) -> requests.Response:
    return requests.post(
        oidc_provider.discovery()["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client_id, E2E_CLIENT_SECRET),
        timeout=10,
    )


def test_refresh_with_rotation(db, oidc_provider, real_sign_in, monkeypatch):
    source = source_for(oidc_provider, keep_refresh_token=True, scopes=OFFLINE)
    checked: list[dict] = []
    real_check = id_token.validate_refreshed

    def spy(*args: Any, **kwargs: Any) -> dict:
        checked.append(real_check(*args, **kwargs))
        return checked[-1]

    monkeypatch.setattr(id_token, "validate_refreshed", spy)
    assert real_sign_in().response.status_code == 303
    identity = Identity.objects.select_related("user").get()
    first = identity.token_set
    assert first.refresh_token and "offline_access" in first.scope_list
    seen = [first.refresh_token]
    for _ in range(2):
        expire(identity)
        access_token = tokens.get_access_token(identity.user, source)
        token_set = TokenSet.objects.get()
        assert token_set.access_token == access_token
        assert token_set.refresh_token not in seen  # rotated on every use
        seen.append(token_set.refresh_token)
        assert userinfo_accepts(oidc_provider, access_token)
    # Each refresh answer carried an ID token, validated against the first one (RT-01).
    assert [c["sub"] for c in checked] == ["alice-sub", "alice-sub"]
    # RT-02 at the real provider: the spent refresh token is refused, and the reuse revokes the
    # grant, so the site's next refresh is refused too and its tokens are deleted.
    reuse = refresh_at_provider(oidc_provider, source.client_id, seen[0])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    expire(identity)
    with pytest.raises(ReauthenticationRequired) as raised:
        tokens.get_access_token(identity.user, source)
    assert raised.value.code == "sso.refresh.invalid_grant"
    assert not TokenSet.objects.exists()


def test_a_revoked_refresh_token_signs_the_user_out(db, client, oidc_provider, real_sign_in):
    source_for(oidc_provider, keep_refresh_token=True, revalidate_session=True, scopes=OFFLINE)
    assert real_sign_in().response.status_code == 303
    token_set = TokenSet.objects.get()
    revoked = requests.post(
        oidc_provider.discovery()["revocation_endpoint"],
        data={"token": token_set.refresh_token, "token_type_hint": "refresh_token"},
        auth=(Identity.objects.get().source.client_id, E2E_CLIENT_SECRET),
        timeout=10,
    )
    assert revoked.status_code == 200
    assert signed_in(client)  # the access token is still valid: no provider call, still in
    expire(token_set.identity)
    session = client.session
    session[sessions.SESSION_KEY] = {**session[sessions.SESSION_KEY], "valid_until": 0}
    session.save()
    assert not signed_in(client)
    assert not TokenSet.objects.exists()
    assert not SSOSession.objects.exists()


def test_rp_initiated_logout_round_trip(db, client, oidc_provider, real_sign_in):
    source_for(oidc_provider, logout_at_provider=True)
    op_session = requests.Session()
    assert real_sign_in(op_session=op_session).response.status_code == 303
    response = client.post("/sso/logout/", {"next": "/whoami/"})
    assert response.status_code == 303
    assert not signed_in(client)
    assert response["Location"].startswith(oidc_provider.discovery()["end_session_endpoint"])
    back = sign_out_with_requests(
        op_session, response["Location"], redirect_prefix="http://testserver/sso/logged-out/"
    )
    assert set(parse_qs(urlsplit(back).query)) == {"state"}
    returned = client.get(f"{urlsplit(back).path}?{urlsplit(back).query}")
    assert returned.status_code == 303
    assert returned["Location"] == "/whoami/"
    # The provider's session ended too: the next sign-in asks for the password again.
    start = Client().post("/sso/local/login/")
    page = op_session.get(start["Location"], allow_redirects=True, timeout=10)
    assert 'name="login"' in page.text


def other_app_signs_in_and_out(oidc_provider: Any, op_session: requests.Session) -> None:
    """The same person uses another application of the provider, then signs out there."""
    authorize = oidc_provider.discovery()["authorization_endpoint"]
    query = {
        "client_id": E2E_CLIENT_ID,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": "http://testserver/sso/local-2/callback/",
        "state": "other-app-state",
        "nonce": "other-app-nonce",
    }
    sign_in_with_requests(
        op_session, f"{authorize}?{urlencode(query)}", "alice", redirect_prefix=query["redirect_uri"]
    )
    end_session = oidc_provider.discovery()["end_session_endpoint"]
    sign_out = {"client_id": E2E_CLIENT_ID, "post_logout_redirect_uri": "http://testserver/"}
    sign_out_with_requests(
        op_session, f"{end_session}?{urlencode(sign_out)}", redirect_prefix="http://testserver/"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ENGINES)
def test_back_channel_logout_from_the_provider_ends_the_session(
    settings, live_server, oidc_provider, real_sign_in, engine
):
    settings.SESSION_ENGINE = engine
    slug = "local-bcl"
    source_for(
        oidc_provider,
        slug,
        metadata={
            "backchannel_logout_uri": f"{live_server.url}/sso/{slug}/backchannel-logout/",
            "backchannel_logout_session_required": True,
        },
    )
    browser, bystander = Client(), Client()
    op_session = requests.Session()
    assert real_sign_in(slug, browser=browser, op_session=op_session).response.status_code == 303
    assert real_sign_in(slug, browser=bystander, login="bob").response.status_code == 303
    record = SSOSession.objects.get(identity__subject="alice-sub")
    assert record.sid  # the provider's sid, kept from the ID token
    other_app_signs_in_and_out(oidc_provider, op_session)
    assert not signed_in(browser)
    assert signed_in(bystander)
    assert list(SSOSession.objects.values_list("identity__subject", flat=True)) == ["bob-sub"]
    assert "backchannel logout to" not in oidc_provider.log_text()


@pytest.fixture
def logout_token_catcher() -> Iterator[tuple[str, list[str]]]:
    """A stand-in back-channel logout URI that keeps what the provider posts to it."""
    caught: list[str] = []

    class Catcher(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            caught.extend(parse_qs(body).get("logout_token", []))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Catcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", caught
    server.shutdown()
    server.server_close()


def test_real_logout_tokens_replayed_or_tampered_with_are_refused(
    db, client, oidc_provider, real_sign_in, logout_token_catcher
):
    catcher_url, caught = logout_token_catcher
    source = source_for(
        oidc_provider,
        metadata={"backchannel_logout_uri": catcher_url, "backchannel_logout_session_required": True},
    )
    op_session = requests.Session()
    assert real_sign_in(op_session=op_session).response.status_code == 303
    end_session = oidc_provider.discovery()["end_session_endpoint"]
    query = urlencode({"client_id": source.client_id})
    sign_out_with_requests(op_session, f"{end_session}?{query}", redirect_prefix=None)
    (token,) = caught
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    strict = Client(enforce_csrf_checks=True)

    def deliver(value: str) -> int:
        body = urlencode({"logout_token": value})
        response = strict.post(
            "/sso/local/backchannel-logout/", body, content_type="application/x-www-form-urlencoded"
        )
        return response.status_code

    assert deliver(f"{header}.{payload}.{flipped}") == 400
    assert deliver(f"{header}.{payload}.") == 400
    assert signed_in(client)
    assert deliver(token) == 200
    assert not signed_in(client)
    assert deliver(token) == 400  # replay


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_make_one_token_request(oidc_provider, real_sign_in, monkeypatch):
    source = source_for(oidc_provider, keep_refresh_token=True, scopes=OFFLINE)
    assert real_sign_in().response.status_code == 303
    identity = Identity.objects.select_related("user", "source").get()
    expire(identity)
    calls: list[float] = []
    real_refresh = oauth2.refresh

    def counting_refresh(*args: Any, **kwargs: Any) -> dict:
        calls.append(time.monotonic())
        time.sleep(0.3)  # every worker is waiting on the lock by now
        return real_refresh(*args, **kwargs)

    monkeypatch.setattr(oauth2, "refresh", counting_refresh)
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[Any] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(tokens.get_access_token(identity.user, source))
        except Exception as exc:  # reported by the assertions below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(calls) == 1
    assert len(results) == workers and len(set(results)) == 1, results
    assert userinfo_accepts(oidc_provider, results[0])
    # The grant is intact (no reuse was detected): the stored refresh token still works.
    expire(identity)
    assert tokens.get_access_token(identity.user, source) != results[0]
