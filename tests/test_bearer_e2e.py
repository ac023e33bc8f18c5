"""Resource-server mode against the real provider (npm oidc-provider on loopback).

Its access tokens for the resource ``https://api.example.test`` are RFC 9068 JWTs (``typ:
at+jwt``): from the client-credentials grant (``sub`` = the client: a service principal) and from
the authorization code grant when the token request repeats ``resource`` (a person's token).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from django_sso.internal import token_cache
from tests.bearer_support import (
    _fresh_bearer_memory,  # noqa: F401  (autouse)
    assert_refused,
    bearer,
)
from tests.conftest import E2E_CLIENT_ID, E2E_CLIENT_SECRET, make_discovered_source
from tests.support.op_server import sign_in_with_requests

pytestmark = pytest.mark.e2e

RESOURCE = "https://api.example.test"
REDIRECT_URI = "http://testserver/sso/local/callback/"
AUTH = (E2E_CLIENT_ID, E2E_CLIENT_SECRET)


@pytest.fixture
def api_source(db: Any, oidc_provider: Any) -> Any:
    return make_discovered_source(
        oidc_provider, bearer_audiences=RESOURCE, permission_prefix="app:", bearer_require_at_jwt=True
    )


def client_credentials(oidc_provider: Any, scope: str = "app:manage_orders") -> str:
    answer = requests.post(
        oidc_provider.url("/token"),
        data={"grant_type": "client_credentials", "scope": scope},
        auth=AUTH,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def user_token(oidc_provider: Any, login: str, scope: str, resource: str | None = RESOURCE) -> dict[str, Any]:
    """Authorization code + PKCE as a client app would; ``resource`` in both requests gives a JWT."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": E2E_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    extra = {"resource": resource} if resource else {}
    url = f"{oidc_provider.discovery()['authorization_endpoint']}?{urlencode({**params, **extra})}"
    callback = sign_in_with_requests(requests.Session(), url, login, redirect_prefix=REDIRECT_URI)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    answer = requests.post(
        oidc_provider.url("/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            **extra,
        },
        auth=AUTH,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_client_credentials_token_is_a_service_principal(api_source, oidc_provider, client):
    token = client_credentials(oidc_provider)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    body = client.get("/api/whoami/", **bearer(token)).json()
    assert body["principal"] == "service"
    assert body["username"] == f"service:local:{E2E_CLIENT_ID}"
    assert body["scopes"] == ["app:manage_orders"]
    assert body["permissions"] == ["shop.manage_orders"]
    assert client.get("/api/orders/", **bearer(token)).json() == {"orders": []}
    other = client_credentials(oidc_provider, scope="app:manage_users")
    params = assert_refused(client.get("/api/orders/", **bearer(other)), 403, "insufficient_scope", other)
    assert params["scope"] == "app:manage_orders"


def test_user_token_with_resource_indicator(api_source, oidc_provider, client, real_sign_in):
    real_sign_in()  # alice has an account here (her identity at the source)
    answer = user_token(oidc_provider, "alice", "openid app:manage_orders")
    token = answer["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == RESOURCE
    body = client.get("/api/whoami/", **bearer(token)).json()
    assert (body["principal"], body["username"], body["email"]) == ("user", "alice", "alice@example.com")
    assert client.get("/api/orders/", **bearer(token)).status_code == 200
    # The ID token of the same answer is not an access token here.
    assert_refused(client.get("/api/whoami/", **bearer(answer["id_token"])), 401, "invalid_token")


def test_user_token_for_an_unknown_person_and_first_sight(api_source, oidc_provider, client):
    token = user_token(oidc_provider, "bob", "openid app:manage_users")["access_token"]
    assert_refused(client.get("/api/whoami/", **bearer(token)), 401, "invalid_token", token)
    api_source.bearer_create_users = True
    api_source.save()
    body = client.get("/api/whoami/", **bearer(token)).json()
    assert (body["principal"], body["username"]) == ("user", "bob-sub")  # its token names no username
    assert_refused(client.get("/api/orders/", **bearer(token)), 403, "insufficient_scope", token)


def test_opaque_userinfo_token_is_refused_unless_introspection_is_configured(
    api_source, oidc_provider, client, real_sign_in
):
    real_sign_in()
    opaque = user_token(oidc_provider, "alice", "openid email", resource=None)["access_token"]
    assert opaque.count(".") == 0
    assert_refused(client.get("/api/whoami/", **bearer(opaque)), 401, "invalid_token", opaque)
    # Introspection at the provider (RFC 7662): no aud in its answer, so the client allow-list.
    api_source.bearer_opaque_tokens = "introspection"
    api_source.bearer_allowed_clients = E2E_CLIENT_ID
    api_source.save()
    assert api_source.introspection_url == oidc_provider.discovery()["introspection_endpoint"]
    for _ in range(3):
        body = client.get("/api/whoami/", **bearer(opaque)).json()
        assert (body["principal"], body["username"], body["scopes"]) == ("user", "alice", ["email", "openid"])


def test_rotation_mid_run(api_source, oidc_provider, client, settings):
    settings.DJANGO_SSO_JWKS_REFETCH_COOLDOWN = 0
    before = client_credentials(oidc_provider)
    for _ in range(5):
        assert client.get("/api/orders/", **bearer(before)).status_code == 200
    kid = oidc_provider.rotate_keys(drop_old=True)
    after = client_credentials(oidc_provider)
    assert jwt.get_unverified_header(after)["kid"] == kid
    assert client.get("/api/orders/", **bearer(after)).status_code == 200  # one refetch
    # The old key is gone from the refreshed set: the remembered token is refused now.
    assert_refused(client.get("/api/orders/", **bearer(before)), 401, "invalid_token", before)
    token_cache.clear()
    assert_refused(client.get("/api/orders/", **bearer(before)), 401, "invalid_token", before)
    for _ in range(5):
        assert client.get("/api/orders/", **bearer(client_credentials(oidc_provider))).status_code == 200
