"""Auth0: a tenant domain (or custom domain); ``audience`` for a JWT access token.

Without an ``audience`` Auth0 issues an opaque access token good only for its UserInfo; with
an API identifier it issues a JWT for that API, carrying the RBAC ``permissions``.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from django_sso.internal.discovery import WELL_KNOWN_SUFFIX
from django_sso.presets import Answers, Option, Preset, host


def fill(answers: Answers) -> dict[str, Any]:
    audience = answers.get("audience", "")
    return {
        "protocol": "oidc",
        "well_known_url": f"https://{answers['domain']}{WELL_KNOWN_SUFFIX}",
        "scopes": "openid email profile",
        "signing_algorithms": "RS256",
        "extra_authorize_params": {"audience": audience} if audience else {},
    }


def roles(answers: Answers) -> dict[str, str]:
    audience = answers.get("audience", "")
    return {"permission_claim": "permissions", "access_token_audience": audience} if audience else {}


PRESET = Preset(
    name="auth0",
    label=_("Auth0"),
    icon="auth0",
    description=_("An Auth0 tenant; optionally an API audience for JWT access tokens."),
    options=(
        Option("domain", _("Domain"), _("e.g. example.us.auth0.com, or your custom domain."), clean=host),
        Option(
            "audience",
            _("API audience"),
            _("The API identifier to get a JWT access token for (e.g. https://api.example.com)."),
            required=False,
        ),
    ),
    roles=roles,
    fill=fill,
)
