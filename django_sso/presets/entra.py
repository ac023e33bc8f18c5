"""Microsoft Entra ID (v2.0 endpoints): one tenant, or multi-tenant with an allow-list.

``common`` and ``organizations`` publish the issuer ``.../{tenantid}/v2.0``; only sources made
from this preset accept it, and then check each token's ``tid`` (see
:mod:`django_sso.internal.entra`, RP-CASES CFG-07). Entra does not vouch for ``email``
(Microsoft's guidance: never use it to link accounts), so e-mails count as unverified.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_sso.internal.discovery import WELL_KNOWN_SUFFIX
from django_sso.internal.entra import MULTI_TENANT, TENANT_ID
from django_sso.presets import Answers, Option, Preset, host

AUTHORITY = "https://login.microsoftonline.com"


def _tenant(value: str) -> str:
    value = value.strip()
    if value.lower() in {*MULTI_TENANT, "consumers"} or TENANT_ID.match(value.lower()):
        return value.lower()
    try:
        return host(value)
    except ValidationError as exc:
        raise ValidationError(
            _("A tenant id, a tenant domain (contoso.onmicrosoft.com), common, organizations or consumers.")
        ) from exc


def _tenants(value: str) -> str:
    items = value.replace(",", " ").split()
    if items == ["*"]:
        return "*"
    if not items or not all(TENANT_ID.match(item.lower()) for item in items):
        raise ValidationError(_("Tenant ids (GUIDs), space-separated, or * for every tenant."))
    return " ".join(item.lower() for item in items)


def validate(answers: Answers) -> None:
    if answers["tenant"] in MULTI_TENANT and not answers.get("allowed_tenants"):
        raise ValidationError(
            {"allowed_tenants": _("Multi-tenant sign-in needs the tenants allowed, or * for every tenant.")}
        )


def fill(answers: Answers) -> dict[str, Any]:
    return {
        "protocol": "oidc",
        "well_known_url": f"{AUTHORITY}/{answers['tenant']}/v2.0{WELL_KNOWN_SUFFIX}",
        "scopes": "openid email profile",
        "signing_algorithms": "RS256",
        "tenant_allowlist": answers.get("allowed_tenants", ""),
        # The ID token has the claims; UserInfo lives on graph.microsoft.com and adds nothing.
        "fetch_userinfo": False,
    }


PRESET = Preset(
    name="entra",
    label=_("Microsoft Entra ID"),
    icon="microsoft",
    button_label=_("Sign in with Microsoft"),
    description=_("Work or school accounts (Azure AD): your tenant, or several with an allow-list."),
    options=(
        Option(
            "tenant",
            _("Tenant"),
            _("Your tenant id or domain; organizations or common for multi-tenant apps."),
            clean=_tenant,
        ),
        Option(
            "allowed_tenants",
            _("Allowed tenants"),
            _("Multi-tenant only: tenant ids allowed to sign in (space-separated), or * for any."),
            required=False,
            clean=_tenants,
        ),
    ),
    roles={"permission_claim": "roles", "groups_claim": "groups"},
    validate=validate,
    fill=fill,
)
