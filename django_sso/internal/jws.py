"""Verify a compact JWS from a provider: size, header, algorithm, key, signature, times.

Shared by ID tokens, signed UserInfo, bearer access tokens and logout tokens. What each of
those must contain on top is checked by its own module.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import jwt

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


_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_B64URL_VALUES = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
#: By the length of the unpadded segment mod 4: the low bits of its last character that hold no data.
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def _b64decode(segment: bytes, kind: str, name: str) -> bytes:
    """Decode one base64url segment strictly: its alphabet only, canonical (RFC 7515 2, 7.1).

    Up to two trailing ``=`` are tolerated as PyJWT does (some issuers pad); a non-canonical
    encoding (stray bits in the last character) is refused, so one token has one spelling.
    """
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1:
        raise TokenValidationError(f"{kind}.malformed", f"{name} is not base64url")
    if not _B64URL.fullmatch(stripped):
        raise TokenValidationError(f"{kind}.malformed", f"{name} is not base64url")
    # Canonical: the bits the last character carries beyond the data are zero.
    unused = _UNUSED_BITS[len(stripped) % 4]
    if unused and _B64URL_VALUES[stripped[-1]] & unused:
        raise TokenValidationError(f"{kind}.malformed", f"{name} is not canonical base64url")
    return base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))


@dataclass
class Parsed:
    """A compact JWS split and decoded, its header checked; nothing verified yet."""

    header: dict[str, Any]
    signing_input: bytes
    payload: bytes
    signature: bytes

    @cached_property
    def unverified_claims(self) -> Any:
        """The payload as JSON (not an object when the token is bad); trusted only once verified."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return None


def parse(token: str, kind: str) -> Parsed:
    """Split a compact JWS, refusing anything else before its claims are looked at.

    Size first (``MAX_TOKEN_BYTES``, RFC 8725 3.10 ...), then three base64url segments, a JSON
    object header without forbidden members, a short string ``kid``. ``kind`` prefixes the error
    codes (``sso.id_token``, ``sso.bearer`` ...).
    """
    if not isinstance(token, str) or not token:
        raise TokenValidationError(f"{kind}.missing")
    if len(token) > app_settings.MAX_TOKEN_BYTES:
        raise TokenValidationError(f"{kind}.too_large", f"{len(token)} bytes")
    segments = token.split(".")
    if len(segments) != 3:
        raise TokenValidationError(f"{kind}.malformed", f"{len(segments)} segments")
    try:
        raw = [segment.encode("ascii") for segment in segments]
    except UnicodeError as exc:
        raise TokenValidationError(f"{kind}.malformed", "not ASCII") from exc
    try:
        header = json.loads(_b64decode(raw[0], kind, "header"))
    except ValueError as exc:
        raise TokenValidationError(f"{kind}.malformed", "header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise TokenValidationError(f"{kind}.malformed", "header is not an object")
    forbidden = FORBIDDEN_HEADERS & header.keys()
    if forbidden:
        raise TokenValidationError(f"{kind}.forbidden_header", ", ".join(sorted(forbidden)))
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise TokenValidationError(f"{kind}.bad_kid", "kid is not a short string")
    return Parsed(
        header=header,
        signing_input=raw[0] + b"." + raw[1],
        payload=_b64decode(raw[1], kind, "payload"),
        signature=_b64decode(raw[2], kind, "signature"),
    )


def read_header(token: str, kind: str) -> dict[str, Any]:
    """Return the header of a compact JWS (see :func:`parse` for what is refused)."""
    return parse(token, kind).header


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


def _verified(parsed: Parsed, keys: list[Any], alg: str, kind: str) -> None:
    """Check the signature with each candidate key in turn; raise unless one verifies."""
    algorithm = _algorithm(alg)
    for key in keys:
        try:
            if algorithm.verify(parsed.signing_input, algorithm.prepare_key(key), parsed.signature):
                return
        except jwt.InvalidKeyError as exc:
            raise TokenValidationError(f"{kind}.invalid", "InvalidKeyError") from exc
    raise TokenValidationError(f"{kind}.bad_signature")


@cache
def _algorithm(alg: str) -> Any:
    return jwt.get_algorithm_by_name(alg)


def _timestamp(claims: dict[str, Any], name: str, kind: str) -> int | None:
    # As PyJWT compares them: int() of the value (so true is 1, "9" is 9); the JSON-number rule
    # is enforced after every other check, keeping the reason codes PyJWT's order gives.
    if name not in claims:
        return None
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError) as exc:
        raise TokenValidationError(f"{kind}.invalid", f"{name} is not a number") from exc


def check_claims(
    claims: Any,
    *,
    kind: str,
    audience: str | list[str] | None,
    issuer: str | None,
    required: tuple[str, ...],
    leeway: float,
) -> dict[str, Any]:
    """Check a verified payload's registered claims as RFC 7519 4.1 and PyJWT do; return it.

    In PyJWT's order: required claims (null counts as missing), ``iat``/``nbf`` not in the
    future and ``exp`` not past (JSON numbers, with ``leeway``), ``iss`` exactly, then ``aud``:
    a string or a list of strings naming one of ``audience`` (or absent when none is expected),
    and ``sub``/``jti`` strings when present.
    """
    if not isinstance(claims, dict):
        raise TokenValidationError(f"{kind}.invalid", "payload is not a JSON object")
    for name in required:
        if claims.get(name) is None:
            raise TokenValidationError(f"{kind}.missing_claim", name)
    iat, nbf, exp = (_timestamp(claims, name, kind) for name in ("iat", "nbf", "exp"))
    now = time.time()
    if iat is not None and iat > now + leeway:
        raise TokenValidationError(f"{kind}.not_yet_valid", "iat")
    if nbf is not None and nbf > now + leeway:
        raise TokenValidationError(f"{kind}.not_yet_valid", "nbf")
    if exp is not None and exp <= now - leeway:
        raise TokenValidationError(f"{kind}.expired")
    if issuer is not None:
        if "iss" not in claims:
            raise TokenValidationError(f"{kind}.missing_claim", "iss")
        if claims["iss"] != issuer:
            raise TokenValidationError(f"{kind}.iss_mismatch")
    _check_audience(claims.get("aud"), audience, kind)
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise TokenValidationError(f"{kind}.invalid", f"{name} is not a string")
    for name in NUMERIC_DATE_CLAIMS:
        value = claims.get(name)
        if name in claims and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise TokenValidationError(f"{kind}.invalid", f"{name} is not a number")
    return claims


def _check_audience(aud: Any, audience: str | list[str] | None, kind: str) -> None:
    if audience is None:
        if aud:
            raise TokenValidationError(f"{kind}.aud_mismatch", "no audience expected")
        return
    if not aud:
        raise TokenValidationError(f"{kind}.missing_claim", "aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenValidationError(f"{kind}.aud_mismatch", "aud is not a string or strings")
    expected = [audience] if isinstance(audience, str) else audience
    if not any(a in audiences for a in expected):
        raise TokenValidationError(f"{kind}.aud_mismatch")


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
    parsed: Parsed | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``token`` with the source's keys; return ``(header, claims)``.

    Checks, in order: size and shape, forbidden headers, ``alg`` in ``algorithms`` (never
    ``none``), a key of the source that fits the algorithm, the signature, then ``exp``/``nbf``/
    ``iat`` with leeway, ``iss`` (exact string) and ``aud`` (:func:`check_claims`). Every failure
    is a :class:`TokenValidationError` whose code starts with ``kind``. ``parsed`` is the
    token's :func:`parse` result when the caller has it already.

    The token is split and decoded once; the signature is checked by PyJWT's algorithm objects
    (``cryptography`` underneath) with keys already in memory.
    """
    parsed = parsed or parse(token, kind)
    header = parsed.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in KNOWN_ALGORITHMS or alg not in algorithms:
        raise TokenValidationError(f"{kind}.alg_not_allowed", f"alg {alg!r}")
    keys = _keys(source, header, alg, kind)
    if not keys:
        raise TokenValidationError(
            f"{kind}.unknown_key", f"no key of the source fits kid {header.get('kid')!r}"
        )
    _verified(parsed, keys, alg, kind)
    claims = parsed.unverified_claims
    if claims is None:
        raise TokenValidationError(f"{kind}.invalid", "payload is not JSON")
    leeway = app_settings.LEEWAY if leeway is None else leeway
    return header, check_claims(
        claims, kind=kind, audience=audience, issuer=issuer, required=required, leeway=leeway
    )
