"""Verify a compact JWS from a provider: size, header, algorithm, key, signature, times.

Shared by ID tokens, signed UserInfo, bearer access tokens and logout tokens. What each of
those must contain on top is checked by its own module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jwt
from jwt.utils import base64url_decode

from django_sso.app_settings import app_settings
from django_sso.exceptions import TokenValidationError
from django_sso.internal import jwks

if TYPE_CHECKING:
    from django_sso.models import Source

#: Header members that point at keys or change processing; never honoured (RFC 8725 3.10).
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "zip", "cty", "enc", "b64"})
#: Algorithms that may ever verify a provider token; "none" is not among them.
KNOWN_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "HS256",
    }
)
MIN_HMAC_SECRET_BYTES = 32
#: Claims that are a NumericDate, "a JSON numeric value" (RFC 7519 2); PyJWT also takes the
#: string "9999999999" or ``true`` (it calls ``int()`` on them), so their type is checked here.
NUMERIC_DATE_CLAIMS = ("exp", "nbf", "iat")


def read_header(token: str, kind: str) -> dict[str, Any]:
    """Return the header of a compact JWS, refusing anything else before parsing claims.

    ``kind`` prefixes the error codes (``sso.id_token``, ``sso.bearer`` ...).
    """
    if not isinstance(token, str) or not token:
        raise TokenValidationError(f"{kind}.missing")
    if len(token) > app_settings.MAX_TOKEN_BYTES:
        raise TokenValidationError(f"{kind}.too_large", f"{len(token)} bytes")
    segments = token.split(".")
    if len(segments) != 3:
        raise TokenValidationError(f"{kind}.malformed", f"{len(segments)} segments")
    try:
        header = json.loads(base64url_decode(segments[0].encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise TokenValidationError(f"{kind}.malformed", "header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise TokenValidationError(f"{kind}.malformed", "header is not an object")
    forbidden = FORBIDDEN_HEADERS & header.keys()
    if forbidden:
        raise TokenValidationError(f"{kind}.forbidden_header", ", ".join(sorted(forbidden)))
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise TokenValidationError(f"{kind}.bad_kid", "kid is not a short string")
    return header


def typ_of(header: dict[str, Any], kind: str = "sso.jwt") -> str:
    """Return the ``typ`` header lower-cased, without an ``application/`` prefix.

    ``kind`` prefixes the error code, as in :func:`read_header`.
    """
    typ = header.get("typ")
    if typ is None:
        return ""
    if not isinstance(typ, str):
        raise TokenValidationError(f"{kind}.bad_typ", "typ is not a string")
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


def _keys(source: Source, header: dict[str, Any], alg: str, kind: str) -> list[Any]:
    if alg.startswith("HS"):
        # IDT-02/IDT-04: HMAC only when the operator chose it, and only with the client secret,
        # never with key material from the JWKS.
        secret = (source.client_secret or "").encode()
        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise TokenValidationError(f"{kind}.weak_hmac_secret", "client secret under 32 bytes")
        return [secret]
    return [k.key for k in jwks.keys_for(source, header.get("kid"), alg)]


def decode(
    source: Source,
    token: str,
    *,
    kind: str,
    audience: str | list[str] | None,
    issuer: str | None,
    algorithms: list[str],
    required: tuple[str, ...] = ("exp", "iat", "iss", "sub"),
    leeway: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``token`` with the source's keys; return ``(header, claims)``.

    Checks, in order: size and shape, forbidden headers, ``alg`` in ``algorithms`` (never
    ``none``), a key of the source that fits the algorithm, the signature, then ``exp``/``nbf``/
    ``iat`` with leeway, ``iss`` (exact string) and ``aud`` as PyJWT does them. Every failure is
    a :class:`TokenValidationError` whose code starts with ``kind``.
    """
    header = read_header(token, kind)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in KNOWN_ALGORITHMS or alg not in algorithms:
        raise TokenValidationError(f"{kind}.alg_not_allowed", f"alg {alg!r}")
    keys = _keys(source, header, alg, kind)
    if not keys:
        raise TokenValidationError(
            f"{kind}.unknown_key", f"no key of the source fits kid {header.get('kid')!r}"
        )
    leeway = app_settings.LEEWAY if leeway is None else leeway
    last_error: Exception | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=leeway,
                options={"require": list(required), "strict_aud": False},
            )
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue
        except jwt.ExpiredSignatureError as exc:
            raise TokenValidationError(f"{kind}.expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenValidationError(f"{kind}.not_yet_valid") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenValidationError(f"{kind}.iss_mismatch") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenValidationError(f"{kind}.aud_mismatch") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenValidationError(f"{kind}.missing_claim", exc.claim) from exc
        except jwt.PyJWTError as exc:
            raise TokenValidationError(f"{kind}.invalid", type(exc).__name__) from exc
        for name in NUMERIC_DATE_CLAIMS:
            value = claims.get(name)
            if name in claims and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise TokenValidationError(f"{kind}.invalid", f"{name} is not a number")
        return header, claims
    raise TokenValidationError(f"{kind}.bad_signature") from last_error
