"""Access tokens presented to this site's API: JWTs checked locally (RFC 9068), and what they grant.

:func:`validate_jwt` checks a JWT access token against the one source its ``iss`` selected:
signature with the source's keys and algorithm allow-list (never HMAC: a bearer token signed with
the client secret could be minted by anyone holding it), exact ``iss``, an ``aud`` naming one of
the source's API audiences, ``exp``/``nbf``/``iat`` with the leeway, ``typ``, and that it is not an
ID token or a sender-constrained token. :func:`token_from_claims` turns verified claims (from a
JWT, an introspection answer or UserInfo) into an :class:`AccessToken`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from django_sso.exceptions import TokenValidationError
from django_sso.internal import id_token, jws
from django_sso.internal.grants import lookup
from django_sso.internal.scope_permissions import permissions_for
from django_sso.models import ServiceRule

if TYPE_CHECKING:
    from django_sso.models import Source

KIND = "sso.bearer"
#: Claims only ID tokens carry (RS-02, RFC 8725 3.12), and the logout token's marker.
ID_TOKEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "events"})
#: Without ``typ: at+jwt``, one of these must show the JWT is an access token (RS-02): RFC 9068
#: ``scope``/``client_id``, Entra ``scp``/``roles``, Auth0 ``permissions``, Okta ``cid``.
ACCESS_TOKEN_MARKERS = frozenset({"scope", "scp", "roles", "permissions", "client_id", "cid"})
#: Where the client a token was issued to is named: RFC 9068, then OIDC, then Okta.
CLIENT_CLAIMS = ("client_id", "azp", "cid")
#: RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class AccessToken:
    """A checked access token: who it speaks for and what it grants. Shared; never mutated."""

    source: Source
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    #: ``app_label.codename`` the scopes map to through the source's permission prefix.
    permissions: frozenset[str]
    #: True for a token with no person behind it (client credentials, RS-10).
    is_service: bool
    expires_at: float
    claims: Mapping[str, Any]


def bearer_algorithms(source: Source) -> list[str]:
    """Return the source's algorithm allow-list without HMAC algorithms."""
    return [a for a in id_token.allowed_algorithms(source) if not a.startswith("HS")]


def read_scopes(source: Source, claims: Mapping[str, Any]) -> frozenset[str]:
    """Return the scopes in the claims the source names, in the format it names (RS-07, RS-08).

    ``path`` is a space-delimited string (RFC 6749 3.3; split on the space character only, so
    a tab or a comma never separates two scopes); ``path[]`` a JSON array of strings. A claim of
    another type, or an array with a non-string member, grants nothing: values are never
    coerced with ``str()``. Scopes are compared exactly: no case folding, no wildcards.
    """
    scopes: set[str] = set()
    for entry in source.bearer_scope_claims.split():
        is_array = entry.endswith("[]")
        value = lookup(claims, entry[:-2] if is_array else entry)
        if is_array:
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                scopes.update(item for item in value if SCOPE_TOKEN.fullmatch(item))
        elif isinstance(value, str):
            scopes.update(item for item in value.split(" ") if SCOPE_TOKEN.fullmatch(item))
    return frozenset(scopes)


def client_of(claims: Mapping[str, Any]) -> str | None:
    """Return the client the token was issued to, if a claim names it."""
    for name in CLIENT_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def is_service_token(source: Source, claims: Mapping[str, Any], client: str | None) -> bool:
    """Return whether no person stands behind the token, by the source's explicit rule (RS-10)."""
    rule = source.bearer_service_rule
    if rule == ServiceRule.CLIENT_ID:
        # RFC 9068 2.2: without a resource owner, sub names the client.
        return client is not None and claims.get("sub") == client
    if rule == ServiceRule.IDTYP:
        return claims.get("idtyp") == "app"
    if rule == ServiceRule.GTY:
        return claims.get("gty") == "client-credentials"
    return False


def token_from_claims(source: Source, claims: dict[str, Any], expires_at: float) -> AccessToken:
    """Return the :class:`AccessToken` for verified claims; refuse what no source policy allows.

    Checks what JWT and opaque tokens share: no ``cnf`` (RS-12: this site implements neither
    DPoP nor mTLS binding, and must not accept a bound token as a plain bearer token), the
    client allow-list (RS-04), and a usable ``sub`` for a person's token.
    """
    if "cnf" in claims:
        raise TokenValidationError(f"{KIND}.sender_constrained", "cnf present")
    client = client_of(claims)
    allowed = source.bearer_allowed_client_list
    if allowed and client not in allowed:
        raise TokenValidationError(f"{KIND}.client_not_allowed")
    service = is_service_token(source, claims, client)
    subject = claims.get("sub")
    if service:
        if subject is not None and not isinstance(subject, str):
            raise TokenValidationError(f"{KIND}.bad_sub")
    else:
        subject = id_token.check_subject(claims, KIND)
    scopes = read_scopes(source, claims)
    return AccessToken(
        source=source,
        subject=subject,
        client_id=client,
        scopes=scopes,
        permissions=permissions_for(source, scopes),
        is_service=service,
        expires_at=expires_at,
        claims=MappingProxyType(claims),
    )


def _check_type(source: Source, header: dict[str, Any], claims: dict[str, Any]) -> None:
    typ = jws.typ_of(header, KIND)
    if typ != "at+jwt":
        # RS-01: RFC 9068 mode takes at+jwt (any case, with or without "application/") only.
        if source.bearer_require_at_jwt:
            raise TokenValidationError(f"{KIND}.wrong_type", f"typ {typ!r}, at+jwt required")
        if typ not in ("jwt", ""):
            raise TokenValidationError(f"{KIND}.wrong_type", f"typ {typ!r}")
        if not ACCESS_TOKEN_MARKERS & claims.keys():
            raise TokenValidationError(f"{KIND}.wrong_type", "no access-token claim")
    if ID_TOKEN_CLAIMS & claims.keys():
        raise TokenValidationError(f"{KIND}.wrong_type", "an ID token or logout token")


def validate_jwt(source: Source, token: str, parsed: jws.Parsed | None = None) -> AccessToken:
    """Return the checked access token, or raise :class:`TokenValidationError` (RFC 9068 4).

    The source was selected by the token's ``iss``; only its keys are used (RS-03). ``parsed``
    is the token's :func:`jws.parse` result when the caller has it.
    """
    header, claims = jws.decode(
        source,
        token,
        kind=KIND,
        audience=source.bearer_audience_list,
        issuer=source.issuer,
        algorithms=bearer_algorithms(source),
        required=("exp", "iat", "iss", "aud", "sub"),
        parsed=parsed,
    )
    _check_type(source, header, claims)
    return token_from_claims(source, claims, float(claims["exp"]))
