"""Finish the protocol half of a sign-in: from the callback request to validated claims.

Order matters (RFC 9700 4.4, 4.7): the flow is taken (and so consumed) first, the issuer and the
callback path are checked before any call to the provider, the code goes only to the token
endpoint of the source stored in the flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_sso.exceptions import AuthorizationDenied, CallbackError, ProviderError
from django_sso.internal import flow as flows
from django_sso.internal import id_token, oauth2, userinfo

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
    if iss != flow.issuer:
        raise CallbackError("sso.callback.iss_mismatch")


def complete(request: HttpRequest, source: Source) -> Completed:
    """Validate the callback for ``source`` and return the person's claims.

    Raise an :class:`~django_sso.exceptions.SSOError`; the flow is consumed either way.
    """
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
    return Completed(flow=flow, claims=claims_from(source, flow, token), token=token)


def claims_from(source: Source, flow: Flow, token: dict[str, Any]) -> dict[str, Any]:
    """Return the validated claims for a token response: ID token first, then UserInfo."""
    access_token = token["access_token"]
    if not source.is_oidc:
        profile = userinfo.fetch(source, access_token, expected_sub=None)
        subject = profile.get("sub", profile.get("id"))
        if isinstance(subject, int) and not isinstance(subject, bool):
            subject = str(subject)
        profile["sub"] = subject
        id_token.check_subject(profile, kind="sso.profile")
        return profile
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
