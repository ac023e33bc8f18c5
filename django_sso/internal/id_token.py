"""ID token validation, OpenID Connect Core 3.1.3.7, with RP-CASES' stricter choices."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

from django_sso.app_settings import app_settings
from django_sso.exceptions import TokenValidationError
from django_sso.internal import entra, jws

if TYPE_CHECKING:
    from django_sso.models import Source

KIND = "sso.id_token"
#: ``typ`` values that mark another kind of JWT (IDT-15, RFC 8725 3.11).
FOREIGN_TYPES = frozenset({"at+jwt", "logout+jwt", "secevent+jwt"})
MAX_SUBJECT_LENGTH = 255
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def allowed_algorithms(source: Source) -> list[str]:
    """Return the source's algorithm allow-list; discovery metadata never widens it (IDT-03)."""
    configured = source.algorithm_list or app_settings.DEFAULT_SIGNING_ALGORITHMS
    return [a for a in configured if a in jws.KNOWN_ALGORITHMS]


def token_hash(value: str, alg: str) -> str:
    """Return ``at_hash``/``c_hash`` for ``value``: the left half of its hash (OIDC Core 3.1.3.6)."""
    digest = _HASHES.get(alg[-3:], hashlib.sha256)(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def check_subject(claims: dict[str, Any], kind: str = KIND) -> str:
    """Return ``sub`` when it is a non-empty string of at most 255 characters (IDT-08)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_LENGTH:
        raise TokenValidationError(f"{kind}.bad_sub")
    return sub


def validate(
    source: Source,
    token: str,
    *,
    issuer: str,
    nonce: str | None,
    max_age: int | None = None,
    access_token: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Return the claims of a valid ID token, or raise :class:`TokenValidationError`.

    ``issuer`` and ``nonce`` come from the flow record only; no claim can switch a check off.
    An Entra multi-tenant issuer template is completed with the token's own ``tid`` and then
    compared exactly, and the tenant must be allowed (CFG-07).
    """
    template = entra.is_template(issuer)
    if template and not entra.accepts_template(source):
        raise TokenValidationError(f"{KIND}.iss_mismatch", "a templated issuer on a generic source")
    header, claims = jws.decode(
        source,
        token,
        kind=KIND,
        audience=source.client_id,
        issuer=None if template else issuer,
        algorithms=allowed_algorithms(source),
        required=("exp", "iat", "iss", "aud", "sub"),
    )
    if template and claims["iss"] != entra.expected_issuer(issuer, claims, KIND):
        raise TokenValidationError(f"{KIND}.iss_mismatch", "iss is not the template with the token's tid")
    if jws.typ_of(header, KIND) in FOREIGN_TYPES or "events" in claims:
        raise TokenValidationError(f"{KIND}.wrong_type", "not an ID token")
    check_subject(claims)
    check_audience(source, claims)
    entra.check_tenant(source, claims, KIND)
    if template:
        entra.identity_subject(source, claims)
    _check_hosted_domain(source, claims)
    now = time.time() if now is None else now
    leeway = app_settings.LEEWAY
    # OIDC Core 3.1.3.7 step 10: refuse tokens issued too long ago.
    if claims["iat"] < now - leeway - app_settings.ID_TOKEN_MAX_AGE:
        raise TokenValidationError(f"{KIND}.too_old")
    # Step 11: the nonce must be the one this flow sent; compared in constant time.
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise TokenValidationError(f"{KIND}.nonce_mismatch")
    # Step 13: auth_time when max_age was requested.
    if max_age is not None:
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            raise TokenValidationError(f"{KIND}.auth_time_missing")
        if auth_time + max_age + leeway < now:
            raise TokenValidationError(f"{KIND}.auth_time_too_old")
    # 3.1.3.8: at_hash, when present, must match the access token.
    if "at_hash" in claims and access_token is not None:
        expected = token_hash(access_token, header["alg"])
        if not isinstance(claims["at_hash"], str) or not hmac.compare_digest(claims["at_hash"], expected):
            raise TokenValidationError(f"{KIND}.at_hash_mismatch")
    return claims


def check_audience(source: Source, claims: dict[str, Any], kind: str = KIND) -> None:
    """Steps 3-5: every audience must be trusted; ``azp``, when present, is the client (IDT-07)."""
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenValidationError(f"{kind}.aud_mismatch", "aud is not a string or a list of strings")
    trusted = {source.client_id, *source.trusted_audience_list}
    if source.client_id not in audiences or not set(audiences) <= trusted:
        raise TokenValidationError(f"{kind}.aud_mismatch", "untrusted audience")
    if "azp" in claims and claims["azp"] != source.client_id:
        raise TokenValidationError(f"{kind}.azp_mismatch")


#: Claims a refreshed ID token must repeat unchanged (OIDC Core 12.2), kept from the first one.
KEPT_CLAIMS = ("iss", "sub", "aud", "azp", "auth_time", "nonce")


def kept_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """Return what :func:`validate_refreshed` needs later from a validated ID token's claims."""
    return {name: claims[name] for name in KEPT_CLAIMS if name in claims}


def validate_refreshed(
    source: Source, token: str, *, original: dict[str, Any], access_token: str
) -> dict[str, Any]:
    """Return the claims of an ID token from a refresh response, or raise (RT-01).

    OIDC Core 12.2: fully validated like the first one (signature, ``iss``, ``aud``, times), and
    ``iss``, ``sub`` and ``aud`` must be those of the original ID token (``original``, from
    :func:`kept_claims`); ``azp``, ``auth_time`` and ``nonce`` may be left out, but when present
    must be the original's too (so an ``azp`` the first token lacked is refused).
    """
    claims = validate(source, token, issuer=original.get("iss", ""), nonce=None, access_token=access_token)
    for name in KEPT_CLAIMS:
        if name in ("azp", "auth_time", "nonce") and name not in claims:
            continue
        if name == "aud":
            same = _as_set(claims["aud"]) == _as_set(original.get("aud"))
        else:
            same = claims[name] == original.get(name)
        if not same:
            raise TokenValidationError(f"{KIND}.refresh_{name}_changed")
    return claims


def _as_set(aud: Any) -> set[str]:
    return {aud} if isinstance(aud, str) else set(aud or [])


def _check_hosted_domain(source: Source, claims: dict[str, Any]) -> None:
    """Google Workspace: the ``hd`` claim must name an allowed domain.

    Sending ``hd`` in the request only filters Google's account chooser; anyone can edit the URL,
    so the token itself decides (Google's OpenID Connect guide, "hd" parameter).
    """
    domains = source.hosted_domain_list
    if domains:
        hd = claims.get("hd")
        if not isinstance(hd, str) or hd.lower() not in domains:
            raise TokenValidationError(f"{KIND}.hd_mismatch", f"hd {str(hd)[:64]!r}")
