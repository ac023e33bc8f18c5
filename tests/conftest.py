"""Shared fixtures: the in-process misbehaving provider, sources wired to it, a sign-in driver."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from django_sso.internal import jwks
from django_sso.models import Source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET, FakeNetwork, FakeNetworkAdapter, FakeOP


@pytest.fixture(autouse=True)
def _fresh_key_memory() -> Any:
    jwks.clear()
    yield
    jwks.clear()


@pytest.fixture
def network(settings: Any) -> Any:
    """The fake network: every outbound call of django_sso lands here."""
    net = FakeNetwork()
    settings.DJANGO_SSO_ADAPTER = "tests.fakeop.FakeNetworkAdapter"
    FakeNetworkAdapter.network = net
    FakeNetworkAdapter.dns = {}
    yield net
    FakeNetworkAdapter.network = None


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
