"""The "add from preset" form: a preset's own questions, then a normal, fully validated Source.

Used by the admin's "Add from preset" page and by ``sso_source create --preset``. The preset's
answers become Source values, which go through :class:`~django_sso.forms.SourceForm` (and so
through discovery and every check a hand-made source gets).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_sso.forms import SourceForm, instance_data
from django_sso.models import Source
from django_sso.presets import Option, Preset

#: Fields asked for every preset, on top of its own options.
COMMON_FIELDS = ("name", "slug", "client_id", "client_secret")


def option_field(option: Option) -> forms.Field:
    """Return the form field that asks for ``option``."""
    if option.choices:
        return forms.ChoiceField(
            label=option.label,
            help_text=option.help_text,
            required=option.required and not option.default,
            choices=option.choices,
            initial=option.default,
        )
    return forms.CharField(
        label=option.label,
        help_text=option.help_text,
        required=option.required and not option.default,
        initial=option.default,
        max_length=500,
    )


def preset_data(
    preset: Preset, options: dict[str, str], common: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return SourceForm data for a new source made from ``preset``.

    ``options`` must be cleaned (:meth:`Preset.clean_options`); ``common`` holds name, slug,
    client id and secret; ``overrides`` are further Source values.
    """
    data = instance_data(Source())
    values = {**preset.source_values(options, client_id=common.get("client_id", "")), **common}
    values.update(overrides or {})
    for name, value in values.items():
        data[name] = value
    for name in ("extra_authorize_params", "preset_options"):
        if not isinstance(data[name], str):
            data[name] = json.dumps(data[name])
    return {k: v for k, v in data.items() if v is not None}


def build_source_form(
    preset: Preset, options: dict[str, str], common: dict[str, Any], overrides: dict[str, Any] | None = None
) -> SourceForm:
    """Return an unvalidated SourceForm for a new source made from ``preset``."""
    return SourceForm(data=preset_data(preset, options, common, overrides))


class PresetForm(forms.Form):
    """Ask what ``preset`` needs; :meth:`save` creates the source."""

    name = forms.CharField(label=_("name"), max_length=100)
    slug = forms.SlugField(label=_("slug"), max_length=50, help_text=_("Used in URLs."))
    client_id = forms.CharField(label=_("client ID"), max_length=255)
    client_secret = forms.CharField(
        label=_("client secret"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again."),
    )

    def __init__(self, preset: Preset, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.preset = preset
        self.fields["name"].initial = preset.label
        self.fields["slug"].initial = preset.name
        for option in preset.options:
            self.fields[f"option_{option.name}"] = option_field(option)
        self.source_form: SourceForm | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        raw = {o.name: data.get(f"option_{o.name}") or "" for o in self.preset.options}
        try:
            options = self.preset.clean_options(raw)
        except ValidationError as exc:
            for name, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                field = f"option_{name}" if f"option_{name}" in self.fields else None
                for message in messages:
                    self.add_error(field, message)
            return data
        self.source_form = build_source_form(self.preset, options, {k: data[k] for k in COMMON_FIELDS})
        if not self.source_form.is_valid():
            for name, messages in self.source_form.errors.items():
                field = name if name in COMMON_FIELDS else None
                label = self.source_form.fields[name].label if name in self.source_form.fields else ""
                for message in messages:
                    self.add_error(field, message if field or not label else f"{label}: {message}")
        return data

    def save(self) -> Source:
        """Create the source (valid forms only)."""
        assert self.source_form is not None
        return self.source_form.save()
