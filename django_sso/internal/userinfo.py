"""UserInfo (OIDC Core 5.3) and plain OAuth 2 profile endpoints."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from django_sso.exceptions import ProviderError, TokenValidationError
from django_sso.internal import id_token, jws
from django_sso.internal.http import parse_json_object, send

if TYPE_CHECKING:
    from django_sso.models import Source

KIND = "sso.userinfo"
#: Aggregated and distributed claims are never fetched nor merged (UI-04).
IGNORED_MEMBERS = frozenset({"_claim_names", "_claim_sources"})


def fetch(source: Source, access_token: str, *, expected_sub: str | None) -> dict[str, Any]:
    """Return the claims the UserInfo/profile endpoint gives for ``access_token``.

    The token goes only in the ``Authorization`` header (UI-02). A signed answer
    (``application/jwt``) is verified like an ID token (UI-03). With ``expected_sub``, the answer's
    ``sub`` must equal it exactly (OIDC Core 5.3.2, UI-01).
    """
    url = source.userinfo_url
    response = send(
        "GET",
        url,
        kind=KIND,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json, application/jwt"},
    )
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/jwt":
        claims = _verified_jwt(source, response.text)
    else:
        try:
            claims = parse_json_object(response)
        except ProviderError as exc:
            raise ProviderError(f"{KIND}.not_json", exc.detail) from exc
    claims = {k: v for k, v in claims.items() if k not in IGNORED_MEMBERS}
    if expected_sub is not None:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), expected_sub.encode()):
            raise TokenValidationError(f"{KIND}.sub_mismatch")
    return claims


def _verified_jwt(source: Source, token: str) -> dict[str, Any]:
    _, claims = jws.decode(
        source,
        token.strip(),
        kind=KIND,
        audience=source.client_id,
        issuer=source.issuer,
        algorithms=id_token.allowed_algorithms(source),
        required=("iss", "aud", "sub"),
    )
    return claims
