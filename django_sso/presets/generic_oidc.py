"""Any other OpenID Connect provider (IBM Verify, ForgeRock/Ping AM, Authentik ...) by issuer.

The well-known URL is the issuer plus ``/.well-known/openid-configuration``; the document's
``issuer`` must then equal it exactly. A templated issuer (``{tenantid}``) is refused here.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_sso.internal.discovery import WELL_KNOWN_SUFFIX
from django_sso.presets import Answers, Option, Preset, https_url


def _issuer(value: str) -> str:
    if "{" in value or "}" in value:
        raise ValidationError(_("An issuer, not a template: {…} is never a wildcard."))
    return https_url(value)


def _claim(value: str) -> str:
    if any(c.isspace() for c in value):
        raise ValidationError(_("No spaces."))
    return value


def fill(answers: Answers) -> dict[str, Any]:
    return {
        "protocol": "oidc",
        "well_known_url": answers["issuer"] + WELL_KNOWN_SUFFIX,
        "scopes": answers.get("scopes") or "openid email profile",
        "signing_algorithms": "RS256",
    }


def roles(answers: Answers) -> dict[str, str]:
    return {"groups_claim": answers["groups_claim"]} if answers.get("groups_claim") else {}


PRESET = Preset(
    name="oidc",
    label=_("Generic OpenID Connect"),
    icon="openid",
    description=_("Any certified OpenID Provider, found from its issuer URL."),
    options=(
        Option(
            "issuer",
            _("Issuer"),
            _("e.g. https://tenant.verify.ibm.com/oidc/endpoint/default"),
            clean=_issuer,
        ),
        Option("scopes", _("Scopes"), default="openid email profile"),
        Option(
            "groups_claim", _("Groups claim"), _("e.g. groups. Empty: none."), required=False, clean=_claim
        ),
    ),
    roles=roles,
    fill=fill,
)
