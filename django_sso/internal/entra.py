"""Microsoft Entra ID's tenant-templated issuer (RP-CASES CFG-07).

The multi-tenant endpoints (``/common/v2.0``, ``/organizations/v2.0``) publish the literal issuer
``https://login.microsoftonline.com/{tenantid}/v2.0``, while each ID token carries its own
tenant's issuer. Generic OpenID Connect never treats ``{...}`` as a wildcard (discovery refuses
such an issuer). Only a source made from the Entra preset accepts it, and then, per token:
the token's ``tid`` is substituted into the template, ``iss`` must equal the result exactly, and
``tid`` must be in the source's tenant allow-list. The identity key becomes ``tid:sub``, since
``sub`` alone is only unique within one tenant.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django_sso.exceptions import TokenValidationError

if TYPE_CHECKING:
    from django_sso.models import Source

PLACEHOLDER = "{tenantid}"
#: The preset whose sources may use a templated issuer.
PRESET = "entra"
#: Tenant segments whose discovery document has the templated issuer.
MULTI_TENANT = frozenset({"common", "organizations"})
#: A tenant id as Entra writes it: a lower-case GUID.
TENANT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_SUBJECT_LENGTH = 255


def is_template(issuer: str) -> bool:
    """Return whether ``issuer`` contains a ``{...}`` placeholder."""
    return "{" in issuer or "}" in issuer


def accepts_template(source: Source | None = None, *, preset: str = "") -> bool:
    """Return whether a source (or a source about to be made from ``preset``) may use a template."""
    return (source.preset if source is not None else preset) == PRESET


def discovery_issuer_matches(expected: str, found: str) -> bool:
    """Return whether Entra's ``found`` issuer fits the well-known URL's issuer ``expected``.

    * ``/common`` or ``/organizations``: ``found`` is ``expected`` with the tenant segment
      replaced by the literal ``{tenantid}``;
    * a tenant named by a domain (``contoso.onmicrosoft.com``) or ``consumers``: ``found`` names
      the tenant by its id instead, so it is ``expected`` with a GUID in that segment.

    Everything else (scheme, host, the rest of the path) must be byte-identical.
    """
    parts = urlsplit(expected)
    segments = parts.path.split("/")
    if len(segments) < 2 or not segments[1] or parts.query or parts.fragment:
        return False
    tenant = segments[1]

    def with_tenant(value: str) -> str:
        return f"{parts.scheme}://{parts.netloc}" + "/".join(["", value, *segments[2:]])

    if tenant.lower() in MULTI_TENANT:
        return found == with_tenant(PLACEHOLDER)
    if TENANT_ID.match(tenant):
        return False
    found_segments = urlsplit(found).path.split("/")
    return (
        len(found_segments) > 1
        and bool(TENANT_ID.match(found_segments[1]))
        and (found == with_tenant(found_segments[1]))
    )


def fits_template(template: str, issuer: str) -> bool:
    """Return whether ``issuer`` is ``template`` with a tenant id in place of the placeholder."""
    prefix, _, suffix = template.partition(PLACEHOLDER)
    if (
        len(issuer) < len(prefix) + len(suffix)
        or not issuer.startswith(prefix)
        or not issuer.endswith(suffix)
    ):
        return False
    return bool(TENANT_ID.match(issuer[len(prefix) : len(issuer) - len(suffix)]))


def expected_issuer(template: str, claims: dict[str, Any], kind: str) -> str:
    """Return the issuer a token must carry: the template with the token's own ``tid``."""
    tid = claims.get("tid")
    if not isinstance(tid, str) or not TENANT_ID.match(tid):
        raise TokenValidationError(f"{kind}.bad_tid", "tid is missing or not a tenant id")
    return template.replace(PLACEHOLDER, tid)


def check_tenant(source: Source, claims: dict[str, Any], kind: str) -> None:
    """Refuse a token whose ``tid`` is not in the source's allow-list (``*``: any tenant).

    For a templated issuer an empty list allows nobody; for a fixed issuer it is optional.
    """
    allowed = source.tenant_list
    if not allowed:
        if is_template(source.issuer):
            raise TokenValidationError(f"{kind}.tenant_not_allowed", "no tenant is allowed")
        return
    if "*" in allowed:
        return
    tid = claims.get("tid")
    if not isinstance(tid, str) or tid.lower() not in allowed:
        raise TokenValidationError(f"{kind}.tenant_not_allowed", f"tenant {str(tid)[:40]!r}")


def identity_subject(source: Source, claims: dict[str, Any]) -> str:
    """Return the identity key: ``sub``, or ``tid:sub`` for a templated (multi-tenant) issuer."""
    if not is_template(source.issuer):
        return claims["sub"]
    subject = f"{claims['tid']}:{claims['sub']}"
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise TokenValidationError("sso.id_token.bad_sub", "tenant and subject are too long")
    return subject
