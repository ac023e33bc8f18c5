"""Keycloak: a server URL and a realm; roles from the realm or from this client.

Keycloak writes realm roles to ``realm_access.roles`` and client roles to
``resource_access.<client id>.roles`` (a client id with dots works: claim paths match the longest
key). They are in the ID token when the "roles" client scope's mappers have "Add to ID token"
on; otherwise set the source's access token audience to read them from the access token.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_sso.internal.discovery import WELL_KNOWN_SUFFIX
from django_sso.presets import Answers, Option, Preset, https_url

_REALM = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


def _realm(value: str) -> str:
    if not _REALM.match(value):
        raise ValidationError(_("A realm name: letters, digits, dot, dash and underscore."))
    return value


def issuer(answers: Answers) -> str:
    return f"{answers['base_url']}/realms/{quote(answers['realm'], safe='')}"


def fill(answers: Answers) -> dict[str, Any]:
    return {
        "protocol": "oidc",
        "well_known_url": issuer(answers) + WELL_KNOWN_SUFFIX,
        "scopes": "openid email profile",
        "signing_algorithms": "RS256",
    }


def roles(answers: Answers) -> dict[str, str]:
    if answers.get("roles") == "client":
        return {"permission_claim": f"resource_access.{answers['client_id']}.roles", "groups_claim": "groups"}
    return {"permission_claim": "realm_access.roles", "groups_claim": "groups"}


PRESET = Preset(
    name="keycloak",
    label=_("Keycloak"),
    icon="keycloak",
    description=_("A Keycloak (or Red Hat build of Keycloak) realm."),
    options=(
        Option(
            "base_url",
            _("Server URL"),
            _("e.g. https://sso.example.com (add /auth for Keycloak before version 17)."),
            clean=https_url,
        ),
        Option("realm", _("Realm"), clean=_realm),
        Option(
            "roles",
            _("Roles"),
            _("Map the realm's roles, or this client's roles."),
            default="realm",
            choices=(("realm", _("realm roles")), ("client", _("client roles"))),
        ),
    ),
    roles=roles,
    fill=fill,
)
