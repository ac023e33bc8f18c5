"""Salesforce: OpenID Connect at login.salesforce.com, a sandbox, or a My Domain.

Each of these is its own issuer, so the domain users sign in at is asked for.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from django_sso.internal.discovery import WELL_KNOWN_SUFFIX
from django_sso.presets import Answers, Option, Preset, host


def fill(answers: Answers) -> dict[str, Any]:
    return {
        "protocol": "oidc",
        "well_known_url": f"https://{answers['domain']}{WELL_KNOWN_SUFFIX}",
        "scopes": "openid email profile",
        "signing_algorithms": "RS256",
    }


PRESET = Preset(
    name="salesforce",
    label=_("Salesforce"),
    icon="salesforce",
    button_label=_("Sign in with Salesforce"),
    description=_("Salesforce users: production, a sandbox, or your My Domain."),
    options=(
        Option(
            "domain",
            _("Login domain"),
            _("login.salesforce.com, test.salesforce.com (sandboxes) or yours.my.salesforce.com."),
            default="login.salesforce.com",
            clean=host,
        ),
    ),
    fill=fill,
)
