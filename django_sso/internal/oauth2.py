"""The OAuth 2.0 protocol legs, through Authlib's client: authorization URL, code exchange, refresh."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth
from authlib.oauth2.rfc6749.errors import OAuth2Error

from django_sso.app_settings import app_settings
from django_sso.exceptions import InvalidGrant, ProviderError
from django_sso.internal.http import check_url, parse_json_object, prepare_session, send

if TYPE_CHECKING:
    from django_sso.internal.flow import Flow
    from django_sso.models import Source

#: Token lifetime assumed when the provider omits ``expires_in`` (TOK-04).
DEFAULT_ACCESS_TOKEN_LIFETIME = 300
#: Parameters this library sets itself; operator or per-request values never replace them.
RESERVED_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "response_mode",
        "request",
        "request_uri",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "grant_type",
    }
)


def _client_secret_basic(client: Any, method: str, uri: str, headers: dict, body: str) -> tuple:
    """RFC 6749 2.3.1: form-urlencode id and secret before Base64 (TOK-02); Authlib does not."""
    pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret or '', safe='')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")
    return uri, headers, body


def client_for(source: Source, flow: Flow | None = None) -> OAuth2Session:
    """Return an Authlib session for the source, prepared with this library's HTTP rules."""
    session = OAuth2Session(
        client_id=source.client_id,
        client_secret=source.client_secret,
        token_endpoint_auth_method=source.token_endpoint_auth_method,
        scope=" ".join(requested_scopes(source)),
        redirect_uri=flow.redirect_uri if flow else None,
        code_challenge_method="S256" if source.use_pkce else None,
        default_timeout=(app_settings.CONNECT_TIMEOUT, app_settings.READ_TIMEOUT),
    )
    session.register_client_auth_method(("client_secret_basic", _client_secret_basic))
    return prepare_session(session)


def client_auth(source: Source) -> OAuth2ClientAuth:
    """Return Authlib's client authentication for the source's token endpoint method."""
    method = source.token_endpoint_auth_method
    return OAuth2ClientAuth(
        source.client_id,
        source.client_secret,
        auth_method=_client_secret_basic if method == "client_secret_basic" else method,
    )


def requested_scopes(source: Source) -> list[str]:
    """Return the scopes to ask for: the configured ones, with ``openid`` for OIDC (AZQ-01).

    With scope permissions on (a permission prefix), the source's permission scopes too.
    """
    scopes = source.scope_list
    if source.is_oidc and "openid" not in scopes:
        scopes = ["openid", *scopes]
    if source.permission_prefix:
        scopes += [s for s in source.permission_scope_list if s not in scopes]
    return scopes


def authorization_url(source: Source, flow: Flow, extra: dict[str, str]) -> str:
    """Return the URL that sends the browser to the provider: ``response_type=code`` only."""
    check_url(source.authorization_url)
    params = {k: v for k, v in {**source.extra_authorize_params, **extra}.items() if k not in RESERVED_PARAMS}
    if source.is_oidc:
        params["nonce"] = flow.nonce
    domains = source.hosted_domain_list
    if len(domains) == 1:
        # Google: preselect the Workspace domain; the ID token's hd claim is what is checked.
        params["hd"] = domains[0]
    url, _ = client_for(source, flow).create_authorization_url(
        source.authorization_url,
        state=flow.state,
        code_verifier=flow.code_verifier if source.use_pkce else None,
        **params,
    )
    return url


def exchange_code(source: Source, flow: Flow, code: str) -> dict[str, Any]:
    """Trade the code for tokens at the flow's own provider only (AZR-05).

    Return the token response with ``expires_at`` and the granted ``scope`` filled in (TOK-04).
    Raise :class:`InvalidGrant` for a refused code, :class:`ProviderError` for everything else.
    """
    extra = {"code_verifier": flow.code_verifier} if source.use_pkce else {}
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri, **extra}
    return token_request(source, data, requested_scopes(source))


def refresh(source: Source, refresh_token: str, scopes: list[str]) -> dict[str, Any]:
    """Use a refresh token (RFC 6749 6), asking for ``scopes``: those granted before (RT-02).

    Return the normalised token response, as :func:`exchange_code` does; the caller keeps the old
    refresh token when the answer has none. Raise :class:`InvalidGrant` when the provider refuses
    the refresh token (revoked, expired, reused), :class:`ProviderError` for everything else.
    """
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scopes:
        data["scope"] = " ".join(scopes)
    return token_request(source, data, scopes)


def token_request(source: Source, data: dict[str, str], requested: list[str]) -> dict[str, Any]:
    """POST ``data`` to the source's token endpoint with its client authentication.

    Return the validated, normalised token response (see :func:`read_token_response`); used for
    every grant: the code, refresh and client credentials.
    """
    try:
        response = send(
            "POST",
            source.token_url,
            kind="sso.token",
            ok=None,  # read_token_response tells invalid_grant from a broken provider
            data=data,
            auth=client_auth(source),
            headers={"Accept": "application/json"},
        )
    except OAuth2Error as exc:
        raise ProviderError("sso.token.client_error", exc.error) from exc
    return read_token_response(response, requested)


def read_token_response(response: requests.Response, requested: list[str]) -> dict[str, Any]:
    """Validate a token endpoint answer (TOK-03/04/05) and normalise it."""
    if response.status_code == 400:
        body = _json_or_empty(response)
        if body.get("error") == "invalid_grant":
            raise InvalidGrant()
        raise ProviderError("sso.token.error", str(body.get("error", "400"))[:64])
    if response.status_code != 200:
        raise ProviderError("sso.token.status", str(response.status_code))
    token = parse_json_object(response)
    if "error" in token:
        raise ProviderError("sso.token.error", str(token["error"])[:64])
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderError("sso.token.no_access_token")
    token_type = token.get("token_type")
    # RFC 6749 5.1: token_type is case-insensitive; only Bearer is supported.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ProviderError("sso.token.bad_token_type", repr(token_type)[:32])
    granted = token.get("scope")
    # RFC 6749 3.3: space-delimited (%x20 only; a tab is part of a token, RS-08).
    token["scope"] = [s for s in granted.split(" ") if s] if isinstance(granted, str) else list(requested)
    # Role mapping grants permissions only from a scope the provider actually sent.
    token["scope_sent"] = isinstance(granted, str)
    expires_in = token.get("expires_in")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = DEFAULT_ACCESS_TOKEN_LIFETIME
    token["expires_at"] = int(time.time()) + expires_in
    return token


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        return parse_json_object(response)
    except ProviderError:
        return {}
