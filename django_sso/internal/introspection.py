"""Opaque access tokens: asked about at the provider, by introspection (RFC 7662) or UserInfo.

Only the one source configured for opaque tokens is ever asked (RS-14: an opaque token names no
issuer, and sending it to another provider would hand it over). Answers, positive or negative,
are kept in Django's cache by the token's SHA-256 until the token's ``exp`` or
``BEARER_OPAQUE_CACHE_SECONDS``, whichever comes first, so a token costs one provider call per
that period across every process, not one per request. A provider that cannot answer fails
closed: :class:`ProviderError` (503 to the client).
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.core.cache import caches

from django_sso.app_settings import app_settings
from django_sso.exceptions import ProviderError, TokenValidationError
from django_sso.internal import userinfo
from django_sso.internal.access_token import KIND, AccessToken, token_from_claims
from django_sso.internal.http import request_json
from django_sso.models import OpaqueTokens, TokenAuthMethod

if TYPE_CHECKING:
    from django_sso.models import Source

#: ``token_type`` values of an access token in an introspection answer (RFC 7662 2.2).
ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token"})
_INACTIVE = "inactive"


def _client_auth(source: Source) -> tuple[dict[str, str], dict[str, str]]:
    """Return (headers, form fields) that authenticate this site at the endpoint (RFC 7662 2.1)."""
    if source.token_endpoint_auth_method == TokenAuthMethod.CLIENT_SECRET_POST:
        return {}, {"client_id": source.client_id, "client_secret": source.client_secret or ""}
    # RFC 6749 2.3.1: form-urlencode id and secret before Base64 (TOK-02).
    pair = f"{quote(source.client_id, safe='')}:{quote(source.client_secret or '', safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")}, {}


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TokenValidationError(f"{KIND}.invalid", f"{name} is not a number")
    return float(value)


def check_introspection(source: Source, answer: dict[str, Any], now: float) -> dict[str, Any]:
    """Return the claims of an active token's introspection answer, or raise (RFC 7662 2.2, RS-14).

    Active only if ``active`` is the JSON ``true``; for an inactive token every other member is
    ignored. ``iss`` must be the source's issuer when present; ``aud`` must name one of the API
    audiences, and may be absent (RFC 7662 makes it optional) only when the source lists the
    clients it accepts; ``exp``/``nbf`` are checked with the leeway; a ``token_type`` other than an
    access token's is refused.
    """
    if answer.get("active") is not True:
        raise TokenValidationError(f"{KIND}.inactive")
    if "iss" in answer and answer["iss"] != source.issuer:
        raise TokenValidationError(f"{KIND}.iss_mismatch")
    if "aud" in answer:
        aud = answer["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise TokenValidationError(f"{KIND}.aud_mismatch", "aud is not a string or strings")
        if not set(audiences) & set(source.bearer_audience_list):
            raise TokenValidationError(f"{KIND}.aud_mismatch")
    elif not source.bearer_allowed_client_list:
        # RFC 7662 makes aud optional; without it, only the client allow-list keeps out tokens
        # the provider issued to any other client (RS-04), so one of the two is required.
        raise TokenValidationError(f"{KIND}.aud_mismatch", "no aud and no client allow-list")
    leeway = app_settings.LEEWAY
    exp, nbf = _number(answer, "exp"), _number(answer, "nbf")
    if exp is not None and exp + leeway <= now:
        raise TokenValidationError(f"{KIND}.expired")
    if nbf is not None and nbf - leeway > now:
        raise TokenValidationError(f"{KIND}.not_yet_valid")
    token_type = answer.get("token_type")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.lower() not in ACCESS_TOKEN_TYPES
    ):
        raise TokenValidationError(f"{KIND}.wrong_type", "not an access token")
    return answer


def _introspect(source: Source, token: str, now: float) -> tuple[dict[str, Any], float]:
    headers, form = _client_auth(source)
    answer = request_json(
        "POST",
        source.introspection_url,
        data={"token": token, "token_type_hint": "access_token", **form},
        headers={"Accept": "application/json", **headers},
    )
    claims = check_introspection(source, answer, now)
    exp = _number(claims, "exp")
    if exp is None:
        return claims, now + app_settings.BEARER_OPAQUE_CACHE_SECONDS
    return claims, exp + app_settings.LEEWAY


def _ask_userinfo(source: Source, token: str, now: float) -> tuple[dict[str, Any], float]:
    # Saleor's resource-server mode: a token UserInfo answers for is a valid token of that person.
    try:
        claims = userinfo.fetch(source, token, expected_sub=None)
    except ProviderError as exc:
        if exc.code == f"{userinfo.KIND}.status" and exc.detail in {"401", "403"}:
            raise TokenValidationError(f"{KIND}.inactive", f"UserInfo answered {exc.detail}") from exc
        raise
    return claims, now + app_settings.BEARER_OPAQUE_CACHE_SECONDS


def _cache_key(source: Source, digest: bytes) -> str:
    return f"{source.cache_key('opaque')}:{digest.hex()}"


def validate_opaque(source: Source, token: str, digest: bytes) -> AccessToken:
    """Return the checked opaque token, asking the source's provider at most once per cache period.

    Raise :class:`TokenValidationError` for a token the provider does not vouch for and
    :class:`ProviderError` when it cannot be asked.
    """
    now = time.time()
    cache = caches[app_settings.CACHE_ALIAS]
    key = _cache_key(source, digest)
    stored = cache.get(key)
    if stored is not None and stored[2] <= now:
        stored = None  # the cache backend kept it past its time (a clock step): ask again
    if stored is None:
        ceiling = now + app_settings.BEARER_OPAQUE_CACHE_SECONDS
        try:
            if source.bearer_opaque_tokens == OpaqueTokens.INTROSPECTION:
                claims, expires_at = _introspect(source, token, now)
            elif source.bearer_opaque_tokens == OpaqueTokens.USERINFO:
                claims, expires_at = _ask_userinfo(source, token, now)
            else:
                raise TokenValidationError(f"{KIND}.malformed", "not a JWT")
        except TokenValidationError as exc:
            # Remember the refusal too: a bad token repeated must not cost a call each time.
            cache.set(key, (_INACTIVE, exc.code, ceiling), timeout=max(1, int(ceiling - now)))
            raise
        stored = (claims, None, min(expires_at, ceiling))
        if stored[2] <= now:
            raise TokenValidationError(f"{KIND}.expired")
        cache.set(key, stored, timeout=max(1, int(stored[2] - now)))
    if stored[0] == _INACTIVE:
        raise TokenValidationError(stored[1], "cached answer")
    return token_from_claims(source, dict(stored[0]), stored[2])
