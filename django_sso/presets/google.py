"""Google: OpenID Connect at accounts.google.com; optionally one Google Workspace domain.

Google's ``hd`` request parameter only preselects the account chooser; the source's hosted
domain makes every ID token's ``hd`` claim be checked too.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_sso.presets import Answers, Option, Preset, host

WELL_KNOWN_URL = "https://accounts.google.com/.well-known/openid-configuration"


def _domains(value: str) -> str:
    try:
        return " ".join(host(domain) for domain in value.replace(",", " ").split())
    except ValidationError as exc:
        raise ValidationError(_("Give domain names, e.g. example.com.")) from exc


def fill(answers: Answers) -> dict[str, Any]:
    return {
        "protocol": "oidc",
        "well_known_url": WELL_KNOWN_URL,
        "scopes": "openid email profile",
        "signing_algorithms": "RS256",
        "hosted_domain": answers.get("hosted_domain", ""),
    }


PRESET = Preset(
    name="google",
    label=_("Google"),
    icon="google",
    button_label=_("Sign in with Google"),
    description=_("Google accounts, or only those of your Google Workspace domain."),
    options=(
        Option(
            "hosted_domain",
            _("Workspace domain"),
            _("Only accounts of this Google Workspace domain (checked on every ID token). Empty: any."),
            required=False,
            clean=_domains,
        ),
    ),
    fill=fill,
)
