"""Resource-server mode: a request's bearer token (RFC 6750) becomes a principal.

:func:`authenticate` is what the middleware, the decorator and the DRF class call. In order:

1. :func:`get_token` reads the token from the ``Authorization`` header only (RS-11): the scheme
   is case-insensitive, ``access_token`` in the query or a form body is never used and makes a
   request that also has the header a 400, a header that is not ``Bearer <b64token>`` is a 400,
   the ``DPoP`` scheme is a 401 (RS-12: no downgrade to a plain bearer token), and a token over
   ``MAX_TOKEN_BYTES`` is refused before anything is decoded.
2. :func:`validate` looks the token's SHA-256 up among the tokens already checked; a repeated
   token costs that hash and one dictionary lookup. A new JWT selects its source by exact ``iss``
   from the in-memory source map (no query) and is checked locally against that source's keys
   (``internal/access_token.py``); an opaque token goes to the one source configured for them
   (``internal/introspection.py``).
3. :func:`principal_for` gives a :class:`~django_sso.principals.ServicePrincipal` for a token with
   no person behind it (no query), or the identity's user (one query) with the token's
   permissions laid over it for the request.

Failures are :class:`~django_sso.exceptions.BearerError` subclasses, logged with their reason
code (never the token) and answered by :func:`error_response`: 400/401/403 with
``WWW-Authenticate: Bearer``, or 503 when the provider cannot be asked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import load_backend
from django.http import HttpRequest, JsonResponse

from django_sso.app_settings import app_settings
from django_sso.backends import SSOBackend
from django_sso.exceptions import (
    BearerError,
    BearerUnavailable,
    ConfigurationError,
    InvalidRequest,
    InvalidToken,
    PolicyRefused,
    ProviderError,
    TokenValidationError,
)
from django_sso.internal import jwks, jws, source_map, token_cache
from django_sso.internal.access_token import KIND, AccessToken, validate_jwt
from django_sso.internal.introspection import validate_opaque
from django_sso.principals import ServicePrincipal, with_token_permissions

if TYPE_CHECKING:
    from django_sso.models import Source

logger = logging.getLogger("django_sso")

#: RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: Seconds a client is asked to wait when the provider cannot be asked (503).
RETRY_AFTER = 30
#: ``error_description`` per reason code (RFC 6750 3: printable ASCII, no quote, no backslash).
DESCRIPTIONS = {
    f"{KIND}.expired": "The access token expired.",
    f"{KIND}.not_yet_valid": "The access token is not valid yet.",
    f"{KIND}.aud_mismatch": "The access token is not meant for this API.",
    f"{KIND}.unknown_issuer": "The access token was not issued by a trusted provider.",
    f"{KIND}.inactive": "The access token is not active.",
    f"{KIND}.wrong_type": "This is not an access token.",
    f"{KIND}.sender_constrained": "Sender-constrained tokens are not supported here.",
    f"{KIND}.dpop": "DPoP is not supported here; send a Bearer token.",
    f"{KIND}.too_large": "The access token is too large.",
    f"{KIND}.unknown_user": "The access token's subject has no account here.",
    f"{KIND}.several_methods": "Send the access token in the Authorization header only.",
}


@dataclass(frozen=True)
class BearerAuth:
    """A request authenticated by a bearer token."""

    principal: Any
    token: AccessToken


def get_token(request: HttpRequest) -> str | None:
    """Return the bearer token of the request's ``Authorization`` header, or None if it has none.

    Raise :class:`InvalidRequest` for a malformed header or a token sent in more than one way
    (RFC 6750 2, 3.1), :class:`InvalidToken` for the DPoP scheme or an oversized token.
    """
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "dpop":
        raise InvalidToken(f"{KIND}.dpop")
    if scheme != "bearer":
        return None
    # RFC 6750 2.1: credentials = "Bearer" 1*SP b64token.
    credentials = credentials.lstrip(" ")
    if len(credentials) > app_settings.MAX_TOKEN_BYTES:
        raise InvalidToken(f"{KIND}.too_large", f"{len(credentials)} bytes")
    if not B64TOKEN.fullmatch(credentials):
        raise InvalidRequest(f"{KIND}.malformed_header")
    # The query string is parsed only when it could hold the parameter (a request's hot path).
    in_query = "access_token" in request.META.get("QUERY_STRING", "") and "access_token" in request.GET
    if in_query or (
        request.method == "POST"
        and request.content_type == "application/x-www-form-urlencoded"
        and "access_token" in request.POST
    ):
        # RFC 6750 2: "Clients MUST NOT use more than one method to transmit the token."
        raise InvalidRequest(f"{KIND}.several_methods")
    return credentials


def _jwt_source(token: str) -> tuple[Source, jws.Parsed] | None:
    """Return the source the JWT's unverified ``iss`` names, with the parsed token; None if opaque.

    The claims are read before the signature is checked only to pick the one source whose keys
    may verify it (RS-03); nothing else is taken from them. A token that is not a JWS is opaque
    when a source checks opaque tokens, and refused otherwise.
    """
    try:
        parsed = jws.parse(token, KIND)
    except TokenValidationError:
        if source_map.current().opaque is not None:
            return None
        raise
    claims = parsed.unverified_claims
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    source = source_map.current().by_issuer.get(issuer) if isinstance(issuer, str) else None
    if source is None:
        raise TokenValidationError(f"{KIND}.unknown_issuer")
    return source, parsed


def _check(token: str, key: bytes, checking: list[Source]) -> AccessToken:
    """Check a token not seen before (or whose remembered result no longer holds); remember it.

    ``checking`` receives the source the token was checked for, for the log line of a refusal.
    """
    found = _jwt_source(token)
    if found is not None:
        source, parsed = found
        checking.append(source)
        generation = jwks.generation(source)
        checked = validate_jwt(source, token, parsed)
        if jwks.generation(source) != generation:
            # The key set changed meanwhile (its first fetch, or a rotation): remember the token
            # under the new set only if that still holds its key.
            if not jwks.holds(source, parsed.header.get("kid"), parsed.header["alg"]):
                return checked
            generation = jwks.generation(source)
    else:
        source = source_map.current().opaque
        checking.append(source)
        generation = token_cache.NO_KEYS
        checked = validate_opaque(source, token, key)
    token_cache.put(key, checked, source, generation, checked.expires_at)
    return checked


def _remembered(key: bytes) -> AccessToken | None:
    entry = token_cache.peek(key)
    if entry is None or source_map.current().by_pk.get(entry.source.pk) is not entry.source:
        return None
    generation = (
        token_cache.NO_KEYS if entry.generation == token_cache.NO_KEYS else jwks.generation(entry.source)
    )
    return token_cache.get(key, entry.source, generation)


def validate(token: str) -> AccessToken:
    """Return the checked access token, from the tokens already checked when it holds there.

    Raise :class:`InvalidToken` or :class:`BearerUnavailable`; both are logged.
    """
    key = token_cache.digest(token)
    remembered = _remembered(key)
    if remembered is not None:
        return remembered
    checking: list[Source] = []
    try:
        return _check(token, key, checking)
    except TokenValidationError as exc:
        raise _refused(InvalidToken(exc.code, exc.detail), *checking) from exc
    except (ProviderError, ConfigurationError) as exc:
        raise _refused(BearerUnavailable(exc.code, exc.detail), *checking) from exc


@lru_cache(maxsize=8)
def _backend(paths: tuple[str, ...]) -> SSOBackend:
    for path in paths:
        backend = load_backend(path)
        if isinstance(backend, SSOBackend):
            return backend
    return SSOBackend()


def principal_for(request: HttpRequest | None, token: AccessToken) -> Any:
    """Return who the token speaks for: a service principal, or the user with the token's grants.

    Raise :class:`InvalidToken` when the subject has no (active) account and none may be made.
    """
    if token.is_service:
        return ServicePrincipal(token)
    backend = _backend(tuple(settings.AUTHENTICATION_BACKENDS))
    try:
        user = backend.bearer_user(request, token.source, token.subject or "", dict(token.claims))
    except PolicyRefused as exc:
        raise _refused(InvalidToken(f"{KIND}.unknown_user", exc.code), token.source) from exc
    if user is None:
        raise _refused(InvalidToken(f"{KIND}.unknown_user"), token.source)
    return with_token_permissions(user, token)


def authenticate(request: HttpRequest) -> BearerAuth | None:
    """Return the request's bearer authentication, or None when it carries no bearer token.

    Raise a :class:`BearerError` for a request that carries one that does not authenticate.
    """
    try:
        token = get_token(request)
    except BearerError as exc:
        raise _refused(exc) from exc
    if token is None:
        return None
    checked = validate(token)
    return BearerAuth(principal_for(request, checked), checked)


def _refused(error: BearerError, source: Source | None = None) -> BearerError:
    level = logging.INFO if error.code == f"{KIND}.expired" else logging.WARNING
    logger.log(
        level,
        "sso.bearer.refused code=%s status=%s source=%s detail=%s",
        error.code,
        error.status,
        source.slug if source else "-",
        error.detail,
    )
    return error


def www_authenticate(error: BearerError) -> str:
    """Return the ``WWW-Authenticate`` challenge for a refusal (RFC 6750 3)."""
    params = [f'realm="{app_settings.BEARER_REALM}"']
    if error.error:
        params.append(f'error="{error.error}"')
        params.append(f'error_description="{DESCRIPTIONS.get(error.code, error.description)}"')
    if error.scopes:
        params.append(f'scope="{" ".join(error.scopes)}"')
    return "Bearer " + ", ".join(params)


def error_response(error: BearerError) -> JsonResponse:
    """Return the RFC 6750 answer to a refused request: status, challenge and a small JSON body."""
    body: dict[str, Any] = {"error": error.error or "unauthorized"}
    if isinstance(error, BearerUnavailable):
        body["error"] = "temporarily_unavailable"
    if error.error:
        body["error_description"] = DESCRIPTIONS.get(error.code, error.description)
    if error.scopes:
        body["scope"] = " ".join(error.scopes)
    response = JsonResponse(body, status=error.status)
    if isinstance(error, BearerUnavailable):
        response["Retry-After"] = str(RETRY_AFTER)
    else:
        response["WWW-Authenticate"] = www_authenticate(error)
    response["Cache-Control"] = "no-store"
    return response
