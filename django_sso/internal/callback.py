"""Finish the protocol half of a sign-in: from the callback request to validated claims.

Order matters (RFC 9700 4.4, 4.7): the flow is taken (and so consumed) first, the issuer and the
callback path are checked before any call to the provider, the code goes only to the token
endpoint of the source stored in the flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_sso.exceptions import AuthorizationDenied, CallbackError, ProviderError, SessionExpired
from django_sso.internal import entra, id_token, oauth1, oauth2, profile, userinfo
from django_sso.internal import flow as flows

if TYPE_CHECKING:
    from django.http import HttpRequest

    from django_sso.internal.flow import Flow
    from django_sso.models import Source

_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


@dataclass
class Completed:
    """A finished protocol exchange: who the provider says this is, and the tokens."""

    flow: Flow
    claims: dict[str, Any]
    token: dict[str, Any]


def single_params(request: HttpRequest) -> dict[str, str]:
    """Return the callback's query parameters; a repeated one, or a body, is refused (AZR-07)."""
    if request.method != "GET" or request.body:
        raise CallbackError("sso.callback.bad_method")
    params = {}
    for key, values in request.GET.lists():
        if len(values) != 1:
            raise CallbackError("sso.callback.duplicate_param", key)
        params[key] = values[0]
    return params


def check_iss_parameter(source: Source, flow: Flow, params: dict[str, str]) -> None:
    """RFC 9207: an ``iss`` present must equal the flow's issuer; missing only if not advertised."""
    iss = params.get("iss")
    if iss is None:
        if source.iss_parameter_supported:
            raise CallbackError("sso.callback.iss_missing")
        return
    if entra.is_template(flow.issuer) and entra.accepts_template(source):
        # CFG-07: the tenant is known only from the ID token, whose iss must then equal this one.
        if not entra.fits_template(flow.issuer, iss):
            raise CallbackError("sso.callback.iss_mismatch")
        return
    if iss != flow.issuer:
        raise CallbackError("sso.callback.iss_mismatch")


def complete(request: HttpRequest, source: Source) -> Completed:
    """Validate the callback for ``source`` and return the person's claims.

    Raise an :class:`~django_sso.exceptions.SSOError`; the flow is consumed either way.
    """
    if source.is_oauth1:
        return complete_oauth1(request, source)
    state = request.GET.getlist("state")
    if len(state) > 1:
        # AZR-07 (RFC 6749 3.1: parameters must not repeat): no way to tell which flow is meant.
        raise CallbackError("sso.callback.duplicate_param", "state")
    flow = flows.take(request, state[0] if state else None)
    params = single_params(request)
    if flow.source_id != source.pk:
        # AZR-05: the callback path names another source than the one the flow started with.
        raise CallbackError("sso.callback.source_mismatch")
    check_iss_parameter(source, flow, params)
    if "error" in params:
        error = params["error"] if _ERROR_CODE.match(params["error"]) else "invalid"
        raise AuthorizationDenied(f"sso.authorize.{error}")
    code = params.get("code")
    if not code:
        raise CallbackError("sso.callback.no_code")
    token = oauth2.exchange_code(source, flow, code)
    claims = claims_from(source, flow, token)
    if "iss" in params and source.is_oidc and params["iss"] != claims["iss"]:
        raise CallbackError("sso.callback.iss_mismatch")
    return Completed(flow=flow, claims=claims, token=token)


def complete_oauth1(request: HttpRequest, source: Source) -> Completed:
    """OAuth 1.0a callback: the session-bound temporary token and a verifier, or nothing (OA1-02)."""
    tokens = request.GET.getlist("oauth_token") or request.GET.getlist("denied")
    if len(tokens) > 1:
        raise CallbackError("sso.callback.duplicate_param", "oauth_token")
    if not tokens:
        if "error" in request.GET:
            raise AuthorizationDenied("sso.authorize.access_denied")
        raise CallbackError("sso.oauth1.no_token")
    try:
        # Constant-time lookup in this session only; taking the flow deletes it (single use).
        flow = flows.take(request, tokens[0])
    except SessionExpired as exc:
        if exc.code == "sso.state.unknown":
            raise SessionExpired("sso.oauth1.unknown_token") from exc
        raise
    params = single_params(request)
    if flow.source_id != source.pk:
        raise CallbackError("sso.callback.source_mismatch")
    if "denied" in params or "error" in params:
        raise AuthorizationDenied("sso.authorize.access_denied")
    verifier = params.get("oauth_verifier")
    if not verifier:
        raise CallbackError("sso.oauth1.no_verifier")
    token, claims = oauth1.finish(source, flow, verifier)
    return Completed(flow=flow, claims=claims, token=token)


def claims_from(source: Source, flow: Flow, token: dict[str, Any]) -> dict[str, Any]:
    """Return the validated claims for a token response: ID token first, then UserInfo.

    A plain OAuth 2 source has no ID token: its claims come from the profile URL.
    """
    access_token = token["access_token"]
    if not source.is_oidc:
        return profile.fetch_claims(source, profile.BearerAuth(access_token))
    raw = token.get("id_token")
    if not isinstance(raw, str):
        raise ProviderError("sso.token.no_id_token")
    claims = id_token.validate(
        source,
        raw,
        issuer=flow.issuer,
        nonce=flow.nonce,
        max_age=flow.max_age,
        access_token=access_token,
    )
    if source.fetch_userinfo and source.userinfo_url:
        extra = userinfo.fetch(source, access_token, expected_sub=claims["sub"])
        # UI-04: the ID token is authoritative; UserInfo only adds claims it lacks.
        claims = {**extra, **claims}
    return claims
