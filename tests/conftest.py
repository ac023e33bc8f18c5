"""Shared fixtures: the in-process misbehaving provider, sources wired to it, a sign-in driver."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from django_sso.internal import http, jwks, source_cache
from django_sso.models import Source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET, FakeNetwork, FakeNetworkAdapter, FakeOP


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Any:
    """Each test starts with no keys and no sources in process memory (its rows roll back)."""
    jwks.clear()
    source_cache.clear()
    yield
    jwks.clear()
    source_cache.clear()


@pytest.fixture
def network(settings: Any) -> Any:
    """The fake network: every outbound call of django_sso lands here."""
    net = FakeNetwork()
    settings.DJANGO_SSO_ADAPTER = "tests.fakeop.FakeNetworkAdapter"
    FakeNetworkAdapter.network = net
    FakeNetworkAdapter.dns = {}
    http.reset_pool()
    yield net
    FakeNetworkAdapter.network = None
    http.reset_pool()


@pytest.fixture
def op(network: FakeNetwork) -> FakeOP:
    """The honest provider at https://op.example/honest."""
    provider = FakeOP("https://op.example/honest", key_index=0)
    network.ops.append(provider)
    return provider


@pytest.fixture
def attacker_op(network: FakeNetwork) -> FakeOP:
    """A second configured provider, controlled by an attacker, with its own keys."""
    provider = FakeOP("https://op.example/attacker", key_index=1)
    network.ops.append(provider)
    return provider


def make_source(op: FakeOP, slug: str, **fields: Any) -> Source:
    values: dict[str, Any] = {
        "name": slug.title(),
        "slug": slug,
        "protocol": "oidc",
        "client_id": op.client_id,
        "client_secret": op.client_secret,
        "issuer": op.issuer,
        "authorization_url": op.url("/authorize"),
        "token_url": op.url("/token"),
        "userinfo_url": op.url("/userinfo"),
        "jwks_url": op.url("/jwks"),
        "end_session_url": op.url("/end_session"),
        "iss_parameter_supported": True,
        "scopes": "openid email profile",
    }
    values.update(fields)
    return Source.objects.create(**values)


@pytest.fixture
def source(db: Any, op: FakeOP) -> Source:
    return make_source(op, "honest")


@pytest.fixture
def attacker_source(db: Any, attacker_op: FakeOP) -> Source:
    return make_source(attacker_op, "attacker")


@dataclass
class SignIn:
    """The outcome of one driven sign-in."""

    start: Any
    authorize_url: str
    callback_url: str
    response: Any

    @property
    def authorize_params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.authorize_url).query).items()}


@pytest.fixture
def sign_in(client: Client, op: FakeOP) -> Any:
    """Drive a whole sign-in: POST login, visit the OP, feed its redirect to the callback."""

    def run(
        slug: str = "honest",
        *,
        provider: FakeOP | None = None,
        user: str = "alice",
        next_url: str | None = None,
        browser: Client | None = None,
        tamper: Any = None,
    ) -> SignIn:
        browser = browser or client
        data = {"next": next_url} if next_url is not None else {}
        start = browser.post(f"/sso/{slug}/login/", data)
        assert start.status_code == 302, start.content
        authorize_url = start["Location"]
        callback_url = (provider or op).authorize(authorize_url, user=user)
        if tamper is not None:
            callback_url = tamper(callback_url)
        path = urlsplit(callback_url)
        response = browser.get(f"{path.path}?{path.query}" if path.query else path.path)
        return SignIn(start, authorize_url, callback_url, response)

    return run


@pytest.fixture
def sso_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="django_sso")
    return caplog


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "make_source"]


# ---- the real OpenID Provider (npm oidc-provider on loopback) -----------------------------

E2E_CLIENT_ID = "django-sso-e2e"
E2E_CLIENT_SECRET = "django-sso-e2e-secret-0123456789abcdef"
E2E_POST_CLIENT_ID = "django-sso-e2e-post"
E2E_SCOPES = [
    "openid",
    "email",
    "profile",
    "offline_access",
    "groups",
    "roles",
    "app:manage_orders",
    "app:manage_users",
    "app:shop.manage_orders",
]
E2E_ACCOUNTS = {
    "alice": {
        "sub": "alice-sub",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "preferred_username": "alice",
        "groups": ["staff"],
        "roles": ["orders-admin"],
    },
    "bob": {
        "sub": "bob-sub",
        "email": "bob@example.com",
        "email_verified": True,
        "name": "Bob Builder",
        "preferred_username": "bob",
        "groups": [],
    },
    "carol": {
        "sub": "carol-sub",
        "email": "carol@example.com",
        "email_verified": False,
        "name": "Carol Unverified",
        "preferred_username": "carol",
    },
}


def e2e_redirect_uris(base: str = "http://testserver") -> list[str]:
    return [f"{base}/sso/{slug}/callback/" for slug in ("local", "local-post", "local-nopkce", "local-2")]


@pytest.fixture(scope="session")
def oidc_provider() -> Any:
    """The real provider, one per test session, with a basic and a post client.

    Needs node and npm: tests/support/op_server.py installs oidc-provider from the lock file.
    A missing tool fails the test (never skips), as CI requires.
    """
    from tests.support.op_server import OPServer, ensure_op_installed

    ensure_op_installed()
    grants = ["authorization_code", "refresh_token", "client_credentials"]
    config = {
        "port": 0,
        "clients": [
            {
                "client_id": E2E_CLIENT_ID,
                "client_secret": E2E_CLIENT_SECRET,
                "redirect_uris": e2e_redirect_uris(),
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": grants,
                "post_logout_redirect_uris": ["http://testserver/"],
            },
            {
                "client_id": E2E_POST_CLIENT_ID,
                "client_secret": E2E_CLIENT_SECRET,
                "redirect_uris": e2e_redirect_uris(),
                "token_endpoint_auth_method": "client_secret_post",
                "grant_types": grants,
            },
        ],
        "accounts": E2E_ACCOUNTS,
        "scopes": E2E_SCOPES,
        "resource": "https://api.example.test",
    }
    with OPServer(config) as server:
        yield server


def make_discovered_source(oidc_provider: Any, slug: str = "local", **fields: Any) -> Source:
    """Create a source the way an operator does: the admin form with the well-known URL."""
    from django_sso.forms import SourceForm

    data = {
        "name": fields.pop("name", "Local provider"),
        "slug": slug,
        "protocol": "oidc",
        "enabled": True,
        "display_order": 0,
        "client_id": fields.pop("client_id", E2E_CLIENT_ID),
        "client_secret": fields.pop("client_secret", E2E_CLIENT_SECRET),
        "token_endpoint_auth_method": fields.pop("token_endpoint_auth_method", "client_secret_basic"),
        "well_known_url": oidc_provider.well_known_url,
        "scopes": fields.pop("scopes", "openid email profile"),
        "use_pkce": fields.pop("use_pkce", True),
        "signing_algorithms": "RS256",
        "fetch_userinfo": fields.pop("fetch_userinfo", True),
        "allow_signup": fields.pop("allow_signup", True),
        "extra_authorize_params": "{}",
    }
    data.update(fields)
    form = SourceForm(data=data)
    assert form.is_valid(), form.errors
    return form.save()


@pytest.fixture
def local_source(db: Any, oidc_provider: Any) -> Source:
    """A source for the real provider, configured through discovery on save."""
    return make_discovered_source(oidc_provider)


@pytest.fixture
def real_sign_in(client: Client, oidc_provider: Any) -> Any:
    """Drive a sign-in through the real provider: the OP's login form is filled over HTTP."""
    import requests

    from tests.support.op_server import sign_in_with_requests

    def run(
        slug: str = "local",
        *,
        login: str = "alice",
        next_url: str | None = None,
        browser: Client | None = None,
        op_session: Any = None,
        params: dict[str, str] | None = None,
    ) -> SignIn:
        browser = browser or client
        data = dict(params or {})
        if next_url is not None:
            data["next"] = next_url
        start = browser.post(f"/sso/{slug}/login/", data)
        assert start.status_code == 302, start.content
        session = op_session or requests.Session()
        callback_url = sign_in_with_requests(
            session, start["Location"], login, redirect_prefix=f"http://testserver/sso/{slug}/callback/"
        )
        path = urlsplit(callback_url)
        response = browser.get(f"{path.path}?{path.query}")
        return SignIn(start, start["Location"], callback_url, response)

    return run


# ---- a real OAuth 1.0a provider on loopback (Authlib's server side) -----------------------


@pytest.fixture(scope="session")
def oauth1_server() -> Any:
    """One OAuth 1.0a provider per test session (see tests/support/oauth1_provider.py)."""
    from tests.support.oauth1_provider import OAuth1Provider

    with OAuth1Provider() as provider:
        yield provider


@pytest.fixture
def oauth1_provider(oauth1_server: Any) -> Any:
    """The OAuth 1.0a provider with its knobs and recorder reset."""
    oauth1_server.reset()
    yield oauth1_server
    oauth1_server.reset()


def make_oauth1_source(provider: Any, slug: str = "tw", **fields: Any) -> Source:
    from tests.support.oauth1_provider import CONSUMER_KEY, CONSUMER_SECRET, PROFILE_PATH

    values: dict[str, Any] = {
        "name": "Tweeter",
        "slug": slug,
        "protocol": "oauth1",
        "client_id": CONSUMER_KEY,
        "client_secret": CONSUMER_SECRET,
        "request_token_url": provider.url("/oauth/request_token"),
        "authorization_url": provider.url("/oauth/authorize"),
        "token_url": provider.url("/oauth/access_token"),
        "userinfo_url": provider.url(PROFILE_PATH),
        "scopes": "",
        "profile_subject_field": "user_id",
        "profile_email_field": "email",
        "profile_name_field": "name",
    }
    values.update(fields)
    return Source.objects.create(**values)


@pytest.fixture
def oauth1_source(db: Any, oauth1_provider: Any) -> Source:
    return make_oauth1_source(oauth1_provider)


@pytest.fixture
def oauth1_sign_in(client: Client, oauth1_provider: Any) -> Any:
    """Drive an OAuth 1.0a sign-in: POST login, consent at the provider, feed the redirect back."""

    def run(
        slug: str = "tw",
        *,
        login: str | None = "alice",
        browser: Client | None = None,
        tamper: Any = None,
    ) -> SignIn:
        browser = browser or client
        start = browser.post(f"/sso/{slug}/login/")
        assert start.status_code == 302, start.content
        callback_url = oauth1_provider.authorize(start["Location"], login)
        if tamper is not None:
            callback_url = tamper(callback_url)
        path = urlsplit(callback_url)
        response = browser.get(f"{path.path}?{path.query}" if path.query else path.path)
        return SignIn(start, start["Location"], callback_url, response)

    return run
