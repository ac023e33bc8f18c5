"""The local OpenID Provider (tests/op, npm oidc-provider) behaves as the other tests expect.

Self-contained: no Django, only the OP, Authlib's requests client and PyJWT.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.support.op_server import (
    OPServer,
    SignInError,
    sign_in_with_requests,
    sign_out_with_requests,
)

pytestmark = pytest.mark.e2e

REDIRECT_URI = "http://127.0.0.1:8000/sso/local/callback/"
POST_LOGOUT_URI = "http://127.0.0.1:8000/signed-out/"
RESOURCE = "https://api.example.test"
CLIENT_ID = "django-sso"
CLIENT_SECRET = "django-sso-secret"
SCOPE = "openid email profile groups app:manage_orders offline_access"
ALICE = {
    "sub": "alice-sub",
    "email": "alice@example.com",
    "email_verified": True,
    "name": "Alice Example",
    "preferred_username": "alice",
    "groups": ["staff"],
    "roles": ["orders-admin"],
}
CONFIG = {
    "port": 0,
    "clients": [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "post_logout_redirect_uris": [POST_LOGOUT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "backchannel_logout_uri": None,
        }
    ],
    "accounts": {"alice": ALICE},
    "scopes": ["openid", "email", "profile", "offline_access", "groups", "roles", "app:manage_orders"],
    "resource": RESOURCE,
}


@pytest.fixture(scope="module")
def oidc_op() -> Iterator[OPServer]:
    with OPServer(CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
def discovery(oidc_op: OPServer) -> dict[str, Any]:
    return requests.get(oidc_op.well_known_url, timeout=10).json()


@pytest.fixture(scope="module")
def jwks_client(discovery: dict[str, Any]) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False, cache_jwk_set=False)


def _rp(client_id: str = CLIENT_ID, secret: str | None = CLIENT_SECRET, **kw: Any) -> OAuth2Session:
    return OAuth2Session(
        client_id,
        secret,
        scope=kw.pop("scope", SCOPE),
        redirect_uri=kw.pop("redirect_uri", REDIRECT_URI),
        token_endpoint_auth_method="client_secret_basic",
        **kw,
    )


def _code_flow(
    discovery: dict[str, Any],
    browser: requests.Session,
    login: str = "alice",
    **auth_params: Any,
) -> tuple[dict[str, Any], str, str]:
    """Authorization code + PKCE; returns (token response, nonce, callback URL)."""
    rp = _rp(code_challenge_method="S256", scope=auth_params.pop("scope", SCOPE))
    verifier, nonce = generate_token(48), generate_token(16)
    url, state = rp.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **auth_params
    )
    callback = sign_in_with_requests(browser, url, login, redirect_prefix=REDIRECT_URI)
    token = rp.fetch_token(
        discovery["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )
    return dict(token), nonce, callback


def _id_claims(jwks_client: jwt.PyJWKClient, oidc_op: OPServer, id_token: str) -> dict[str, Any]:
    key = jwks_client.get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=CLIENT_ID, issuer=oidc_op.issuer)


def test_discovery(oidc_op: OPServer, discovery: dict[str, Any]) -> None:
    assert oidc_op.port > 0
    assert oidc_op.issuer == f"http://127.0.0.1:{oidc_op.port}"
    assert discovery["issuer"] == oidc_op.issuer
    for endpoint in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ):
        assert discovery[endpoint].startswith(oidc_op.issuer + "/")
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert discovery["authorization_response_iss_parameter_supported"] is True
    assert discovery["backchannel_logout_supported"] is True
    assert "app:manage_orders" in discovery["scopes_supported"]
    assert requests.get(oidc_op.url("/__test__/health"), timeout=5).status_code == 200


def test_code_flow_with_pkce(
    oidc_op: OPServer, discovery: dict[str, Any], jwks_client: jwt.PyJWKClient
) -> None:
    browser = requests.Session()
    token, nonce, callback = _code_flow(discovery, browser)

    query = parse_qs(urlsplit(callback).query)
    assert query["iss"] == [oidc_op.issuer]
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["token_type"].lower() == "bearer"
    assert token["refresh_token"]

    claims = _id_claims(jwks_client, oidc_op, token["id_token"])
    assert claims["sub"] == "alice-sub"
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Example"
    assert claims["groups"] == ["staff"]
    assert "roles" not in claims  # the roles scope was not requested
    assert claims["nonce"] == nonce

    userinfo = requests.get(
        discovery["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    ).json()
    assert userinfo["sub"] == "alice-sub"
    assert userinfo["email"] == "alice@example.com"

    introspection = requests.post(
        discovery["introspection_endpoint"],
        data={"token": token["access_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()
    assert introspection["active"] is True
    assert "app:manage_orders" in introspection["scope"].split()

    refreshed = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()
    assert refreshed["refresh_token"] != token["refresh_token"]  # rotated
    assert _id_claims(jwks_client, oidc_op, refreshed["id_token"])["sub"] == "alice-sub"


def test_session_is_reused_and_prompt_login_forces_the_form(
    oidc_op: OPServer, discovery: dict[str, Any]
) -> None:
    browser = requests.Session()
    _code_flow(discovery, browser)
    # Silent: with a live OP session the login form is not shown, so any login works.
    token, _, _ = _code_flow(discovery, browser, login="nobody")
    assert token["id_token"]
    with pytest.raises(SignInError, match="rejected the sign-in of 'nobody'"):
        _code_flow(discovery, browser, login="nobody", prompt="login")
    token, _, _ = _code_flow(discovery, browser, prompt="login")
    assert token["refresh_token"]  # offline_access survives prompt=login


def test_unknown_login_is_rejected(discovery: dict[str, Any]) -> None:
    with pytest.raises(SignInError, match="Unknown login"):
        _code_flow(discovery, requests.Session(), login="mallory")


def test_client_credentials_jwt_for_resource(
    discovery: dict[str, Any], jwks_client: jwt.PyJWKClient, oidc_op: OPServer
) -> None:
    resp = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "app:manage_orders"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "app:manage_orders"
    access_token = body["access_token"]
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    key = jwks_client.get_signing_key_from_jwt(access_token)
    claims = jwt.decode(access_token, key, algorithms=["RS256"], audience=RESOURCE, issuer=oidc_op.issuer)
    assert claims["client_id"] == CLIENT_ID
    assert claims["scope"] == "app:manage_orders"


def test_code_flow_jwt_access_token_for_resource(
    oidc_op: OPServer, discovery: dict[str, Any], jwks_client: jwt.PyJWKClient
) -> None:
    # The resource goes in the authorization request AND the token request; without it
    # at the token endpoint an openid request gets an opaque token for the UserInfo endpoint.
    token, _, _ = _code_flow(
        discovery, requests.Session(), scope="openid app:manage_orders", resource=RESOURCE
    )
    assert token["id_token"]
    # Authlib sent no resource at the token endpoint: opaque token, no JWT.
    assert token["access_token"].count(".") == 0

    rp = _rp(code_challenge_method="S256", scope="openid app:manage_orders")
    verifier = generate_token(48)
    url, state = rp.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, resource=RESOURCE
    )
    callback = sign_in_with_requests(requests.Session(), url, "alice", redirect_prefix=REDIRECT_URI)
    token = rp.fetch_token(
        discovery["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
        resource=RESOURCE,
    )
    assert token["scope"] == "app:manage_orders"
    key = jwks_client.get_signing_key_from_jwt(token["access_token"])
    claims = jwt.decode(
        token["access_token"], key, algorithms=["RS256"], audience=RESOURCE, issuer=oidc_op.issuer
    )
    assert claims["sub"] == "alice-sub"
    assert claims["scope"] == "app:manage_orders"
    assert claims["groups"] == ["staff"]
    assert claims["roles"] == ["orders-admin"]


def test_set_account_changes_next_id_token(
    oidc_op: OPServer, discovery: dict[str, Any], jwks_client: jwt.PyJWKClient
) -> None:
    browser = requests.Session()
    _code_flow(discovery, browser)
    oidc_op.set_account("alice", {**ALICE, "groups": ["staff", "admins"], "name": "Alice Renamed"})
    try:
        token, _, _ = _code_flow(discovery, browser)  # silent sign-in, fresh claims
        claims = _id_claims(jwks_client, oidc_op, token["id_token"])
        assert claims["groups"] == ["staff", "admins"]
        assert claims["name"] == "Alice Renamed"
    finally:
        oidc_op.set_account("alice", ALICE)


def test_rotate_keys(oidc_op: OPServer, discovery: dict[str, Any]) -> None:
    browser = requests.Session()
    old_kid = jwt.get_unverified_header(_code_flow(discovery, browser)[0]["id_token"])["kid"]
    new_kid = oidc_op.rotate_keys()
    assert new_kid != old_kid
    token, _, _ = _code_flow(discovery, browser)  # the OP session survives the rotation
    assert jwt.get_unverified_header(token["id_token"])["kid"] == new_kid
    kids = [k["kid"] for k in requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]]
    assert kids[:2] == [new_kid, old_kid]
    newest = oidc_op.rotate_keys(drop_old=True)
    kids = [k["kid"] for k in requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]]
    assert kids == [newest]


def test_runtime_client_without_pkce(oidc_op: OPServer, discovery: dict[str, Any]) -> None:
    redirect = "http://127.0.0.1:8001/callback/"
    metadata = oidc_op.add_client(
        {"client_id": "late", "client_secret": "late-secret", "redirect_uris": [redirect]}
    )
    assert metadata["client_id"] == "late"
    rp = _rp("late", "late-secret", scope="openid email", redirect_uri=redirect)
    url, state = rp.create_authorization_url(discovery["authorization_endpoint"])
    assert "code_challenge" not in url
    callback = sign_in_with_requests(requests.Session(), url, "alice", redirect_prefix=redirect)
    token = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, state=state)
    assert token["scope"] == "openid email"
    assert "refresh_token" not in token


class _LogoutReceiver(BaseHTTPRequestHandler):
    tokens: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.tokens.append(parse_qs(self.rfile.read(length).decode())["logout_token"][0])
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_logout_with_backchannel(
    oidc_op: OPServer, discovery: dict[str, Any], jwks_client: jwt.PyJWKClient
) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _LogoutReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        oidc_op.add_client(
            {
                "client_id": "bcl",
                "client_secret": "bcl-secret",
                "redirect_uris": [REDIRECT_URI],
                "post_logout_redirect_uris": [POST_LOGOUT_URI],
                "backchannel_logout_uri": f"http://127.0.0.1:{receiver.server_port}/bcl",
                "backchannel_logout_session_required": True,
            }
        )
        browser = requests.Session()
        rp = _rp("bcl", "bcl-secret", scope="openid")
        url, state = rp.create_authorization_url(discovery["authorization_endpoint"])
        callback = sign_in_with_requests(browser, url, "alice", redirect_prefix=REDIRECT_URI)
        token = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, state=state)
        sid = jwt.decode(token["id_token"], options={"verify_signature": False})["sid"]

        end = (
            discovery["end_session_endpoint"]
            + "?"
            + urlencode(
                {
                    "id_token_hint": token["id_token"],
                    "post_logout_redirect_uri": POST_LOGOUT_URI,
                    "state": "bye",
                }
            )
        )
        back = sign_out_with_requests(browser, end, redirect_prefix=POST_LOGOUT_URI)
        assert parse_qs(urlsplit(back).query)["state"] == ["bye"]

        assert len(_LogoutReceiver.tokens) == 1
        logout_token = _LogoutReceiver.tokens[0]
        key = jwks_client.get_signing_key_from_jwt(logout_token)
        claims = jwt.decode(logout_token, key, algorithms=["RS256"], audience="bcl", issuer=oidc_op.issuer)
        assert claims["sub"] == "alice-sub"
        assert claims["sid"] == sid
        assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]

        # The OP session is gone: the login form is shown again.
        with pytest.raises(SignInError, match="rejected the sign-in of 'nobody'"):
            sign_in_with_requests(browser, url, "nobody", redirect_prefix=REDIRECT_URI)
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_issuer_with_path_and_bad_config() -> None:
    config = {**CONFIG, "issuer": "http://127.0.0.1:{port}/realms/test"}
    with OPServer(config) as server:
        assert server.issuer == f"http://127.0.0.1:{server.port}/realms/test"
        doc = server.discovery()
        assert doc["issuer"] == server.issuer
        assert doc["authorization_endpoint"] == server.issuer + "/auth"
        assert server.startup_seconds < 20
    with pytest.raises(Exception, match="unknown key"):
        OPServer({"clientz": []}).start()
    assert json.dumps(CONFIG)  # the documented shape is plain JSON
