"""Okta: the org authorization server, or a custom one (``default`` or an ``aus...`` id).

The two have different issuers: ``https://<domain>`` and ``https://<domain>/oauth2/<server>``.
Tokens of one are not valid for the other, so the choice is part of the configuration.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_sso.internal.discovery import WELL_KNOWN_SUFFIX
from django_sso.presets import Answers, Option, Preset, host

_SERVER_ID = re.compile(r"^[A-Za-z0-9]{1,40}$")


def _server(value: str) -> str:
    if not _SERVER_ID.match(value):
        raise ValidationError(_("An authorization server id: default, or aus... ."))
    return value


def issuer(answers: Answers) -> str:
    base = f"https://{answers['domain']}"
    server = answers.get("authorization_server", "")
    return f"{base}/oauth2/{server}" if server else base


def fill(answers: Answers) -> dict[str, Any]:
    # The org server releases the groups claim with the "groups" scope; a custom server
    # releases what its claims say, so "groups" is only asked of the org server.
    scopes = "openid email profile" + ("" if answers.get("authorization_server") else " groups")
    return {
        "protocol": "oidc",
        "well_known_url": issuer(answers) + WELL_KNOWN_SUFFIX,
        "scopes": scopes,
        "signing_algorithms": "RS256",
    }


PRESET = Preset(
    name="okta",
    label=_("Okta"),
    icon="okta",
    button_label=_("Sign in with Okta"),
    description=_("Okta Workforce or Customer Identity, org or custom authorization server."),
    options=(
        Option("domain", _("Okta domain"), _("e.g. example.okta.com, or your custom domain."), clean=host),
        Option(
            "authorization_server",
            _("Authorization server"),
            _("A custom authorization server: default, or its id (aus...). Empty: the org server."),
            required=False,
            clean=_server,
        ),
    ),
    roles={"groups_claim": "groups"},
    fill=fill,
)
