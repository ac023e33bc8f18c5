"""Provider presets: ask the operator only what a provider needs, fill in the rest.

A preset is plain data plus one small function: its label and icon, the options it asks for
(an Okta domain, an Entra tenant, a Keycloak realm ...), ``fill(answers)`` returning the
:class:`~django_sso.models.Source` field values (the well-known URL, scopes, parameters), and
where the provider puts roles and groups for the role mapping. Adding a provider is one module
in this package and one line in :data:`PRESETS`, or :func:`register` from a site's own code.

The values go through :class:`~django_sso.forms.SourceForm` like any hand-made source, so
discovery, the issuer check and every URL rule apply unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

#: Answers given to a preset: its options by name, plus ``client_id``.
Answers = dict[str, str]
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def host(value: str) -> str:
    """Normalise a host name typed with or without ``https://`` and a trailing slash."""
    value = value.strip().lower()
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme != "https" or parts.path.strip("/") or parts.query or parts.port:
            raise ValidationError(_("Give the host name only, e.g. example.okta.com."))
        value = parts.hostname or ""
    value = value.rstrip("/")
    if not _HOST.match(value):
        raise ValidationError(_("This is not a host name."))
    return value


def https_url(value: str) -> str:
    """Normalise a base URL: https, no query or fragment, no trailing slash."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(_("Give an https URL, e.g. https://sso.example.com."))
    return value.rstrip("/")


@dataclass(frozen=True)
class Option:
    """One thing a preset asks for."""

    name: str
    label: str
    help_text: str = ""
    required: bool = True
    default: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    #: Returns the cleaned value or raises ``ValidationError``.
    clean: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Preset:
    """A provider: what to ask, how to fill a source, where its roles and groups are."""

    name: str
    label: str
    icon: str
    fill: Callable[[Answers], dict[str, Any]]
    options: tuple[Option, ...] = ()
    #: Role-mapping field values (``groups_claim``, ``permission_claim`` ...): a dict, or a
    #: function of the answers. Fields the Source model lacks are left out when filling.
    roles: dict[str, str] | Callable[[Answers], dict[str, str]] = field(default_factory=dict)
    button_label: str = ""
    description: str = ""
    #: Checks across options; raises ``ValidationError`` (a dict by option name, or a message).
    validate: Callable[[Answers], None] | None = None

    def role_claims(self, answers: Answers) -> dict[str, str]:
        """Return where this provider puts roles and groups, for these answers."""
        return dict(self.roles(answers) if callable(self.roles) else self.roles)

    def clean_options(self, raw: dict[str, str]) -> dict[str, str]:
        """Return the cleaned options; raise ``ValidationError`` keyed by option name."""
        known = {option.name for option in self.options}
        errors: dict[str, list[Any]] = {}
        for name in raw:
            if name not in known:
                errors.setdefault(name, []).append(_("Unknown option."))
        cleaned: dict[str, str] = {}
        for option in self.options:
            value = (raw.get(option.name) or "").strip() or option.default
            try:
                if not value:
                    if option.required:
                        raise ValidationError(_("This option is required."))
                elif option.choices and value not in dict(option.choices):
                    raise ValidationError(_("Choose one of: %(v)s.") % {"v": ", ".join(dict(option.choices))})
                elif option.clean is not None:
                    value = option.clean(value)
            except ValidationError as exc:
                errors.setdefault(option.name, []).extend(exc.messages)
            cleaned[option.name] = value
        if not errors and self.validate is not None:
            self.validate(cleaned)
        if errors:
            raise ValidationError(errors)
        return cleaned

    def source_values(self, options: dict[str, str], client_id: str = "") -> dict[str, Any]:
        """Return the Source field values for cleaned ``options``.

        Role-mapping values are included only for fields the Source model has.
        """
        from django_sso.models import Source

        answers = {**options, "client_id": client_id}
        model_fields = {f.name for f in Source._meta.get_fields()}
        values: dict[str, Any] = {
            "preset": self.name,
            "preset_options": dict(options),
            "button_icon": self.icon,
            "button_label": self.button_label,
        }
        values.update(self.fill(answers))
        values.update({k: v for k, v in self.role_claims(answers).items() if k in model_fields})
        return values


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    """Add (or replace) a preset by its name; return it."""
    PRESETS[preset.name] = preset
    return preset


def get(name: str) -> Preset | None:
    """Return the preset called ``name``, or None."""
    return PRESETS.get(name)


def choices() -> list[tuple[str, str]]:
    """Return (name, label) pairs for a select, in registration order."""
    return [(preset.name, str(preset.label)) for preset in PRESETS.values()]


def _register_builtins() -> None:
    from django_sso.presets import auth0, entra, generic_oidc, github, google, keycloak, okta, salesforce

    for module in (google, entra, okta, auth0, keycloak, github, salesforce, generic_oidc):
        register(module.PRESET)


_register_builtins()
