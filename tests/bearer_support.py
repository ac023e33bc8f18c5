"""Helpers for the resource-server tests: an API source on the fake provider, access tokens, calls.

Plain functions (and one autouse fixture to import), so the bearer test modules share them
without touching the common conftest.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from django_sso.internal import scope_permissions, source_map, token_cache
from django_sso.models import Identity, Source
from tests.conftest import make_source
from tests.fakeop import DROP, FakeOP

API = "https://api.example.test"
SERVICE_CLIENT = "svc-client"


@pytest.fixture(autouse=True)
def _fresh_bearer_memory() -> Any:
    """Every test starts with empty bearer caches (a rolled-back source sends no signal)."""
    source_map.clear()
    token_cache.clear()
    scope_permissions.clear()
    yield
    source_map.clear()
    token_cache.clear()
    scope_permissions.clear()


def make_api_source(op: FakeOP, slug: str = "honest", **fields: Any) -> Source:
    """A source on ``op`` trusted for bearer tokens for :data:`API`, scopes ``app:*`` as permissions."""
    values: dict[str, Any] = {"bearer_audiences": API, "permission_prefix": "app:"}
    values.update(fields)
    return make_source(op, slug, **values)


def access_claims(op: FakeOP, *, sub: str = "alice-sub", **overrides: Any) -> dict[str, Any]:
    """RFC 9068 claims of a person's access token from ``op``; ``DROP`` removes a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": op.issuer,
        "aud": API,
        "sub": sub,
        "client_id": op.client_id,
        "iat": now,
        "exp": now + 300,
        "jti": f"jti-{time.monotonic_ns()}",
        "scope": "openid app:manage_orders",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


def service_claims(op: FakeOP, client: str = SERVICE_CLIENT, **overrides: Any) -> dict[str, Any]:
    """Claims of a client-credentials token: ``sub`` is the client (RFC 9068 2.2)."""
    return access_claims(op, sub=client, client_id=client, **overrides)


def mint_at(
    op: FakeOP, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None, **kw: Any
) -> str:
    """Sign an access token (``typ: at+jwt`` unless ``header`` says otherwise) with ``op``'s key."""
    return op.mint(
        claims if claims is not None else access_claims(op), {"typ": "at+jwt", **(header or {})}, **kw
    )


def bearer(token: str) -> dict[str, str]:
    """Test-client keyword arguments that send ``Authorization: Bearer <token>``."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def link_user(source: Source, subject: str = "alice-sub", username: str = "alice", **fields: Any) -> Any:
    """Create a user and its identity at ``source``."""
    user = get_user_model().objects.create_user(username=username, email=f"{username}@example.com", **fields)
    Identity.objects.create(source=source, subject=subject, user=user)
    return user


def grant(user: Any, *perms: str) -> None:
    """Give ``user`` the permissions ``app_label.codename`` in the database."""
    for perm in perms:
        label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=label, codename=codename))


def challenge(response: Any) -> dict[str, str]:
    """Parse ``WWW-Authenticate: Bearer k="v", ...`` into a dict (plus ``scheme``)."""
    header = response["WWW-Authenticate"]
    scheme, _, rest = header.partition(" ")
    params = {"scheme": scheme}
    for part in rest.split('", '):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip('"')
    return params


def assert_refused(
    response: Any, status: int, error: str | None, token: str | None = None, *, no_store: bool = True
) -> dict[str, str]:
    """Assert an RFC 6750 refusal: status, challenge with ``error`` (None: no error attribute).

    ``no_store``: django_sso's own answers say ``Cache-Control: no-store``; DRF's do not.
    """
    assert response.status_code == status, response.content
    params = challenge(response)
    assert params["scheme"] == "Bearer"
    assert params["realm"] == "api"
    if error is None:
        assert "error" not in params
    else:
        assert params["error"] == error
    if no_store:
        assert response["Cache-Control"] == "no-store"
    if token is not None:
        assert token not in response.content.decode()
        assert token not in response["WWW-Authenticate"]
    return params
