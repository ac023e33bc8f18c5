"""The Source form: shared by the admin and ``manage.py sso_source``, so both validate alike."""

from __future__ import annotations

import json
from typing import Any

import django
from django import forms
from django.apps import apps
from django.db import models
from django.forms.models import model_to_dict
from django.utils.translation import gettext_lazy as _

from django_sso import presets
from django_sso.exceptions import SSOError
from django_sso.internal import discovery, entra, jwks
from django_sso.internal.http import check_url
from django_sso.internal.jws import MIN_HMAC_SECRET_BYTES
from django_sso.models import OpaqueTokens, Protocol, ServiceRule, Source

URL_FIELDS = (
    "authorization_url",
    "token_url",
    "userinfo_url",
    "jwks_url",
    "end_session_url",
    "request_token_url",
    "emails_url",
    "introspection_url",
)

ERROR_MESSAGES = {
    "sso.discovery.issuer_mismatch": _("Issuer mismatch: the document's issuer is not the URL it came from."),
    "sso.discovery.issuer_template": _(
        "Issuer mismatch: the issuer is a template ({tenantid}), never a wildcard; only the "
        "Microsoft Entra ID preset accepts it."
    ),
    "sso.discovery.issuer_changed": _(
        "Issuer mismatch: the provider's issuer changed; the source was disabled."
    ),
    "sso.discovery.origin_changed": _("An endpoint moved to another origin; the old configuration was kept."),
    "sso.discovery.bad_url": _("The URL must end with /.well-known/openid-configuration."),
    "sso.discovery.incomplete": _("The discovery document lacks a required endpoint."),
    "sso.discovery.no_pkce": _("The provider does not advertise PKCE (S256)."),
    "sso.config.not_https": _("Endpoints must use https."),
    "sso.config.private_address": _("Endpoints at private or loopback addresses are not allowed."),
    "sso.config.unresolvable": _("The host name does not resolve."),
    "sso.http.timeout": _("The provider did not answer in time."),
    "sso.http.tls": _("The provider's TLS certificate could not be verified."),
    "sso.http.status": _("The provider answered with an error status."),
    "sso.http.not_json": _("The provider did not answer with a JSON object."),
    "sso.http.too_large": _("The provider's answer is too large."),
    "sso.http.redirect_refused": _("The provider answered with a redirect, which is not followed."),
    "sso.http.unreachable": _("The provider could not be reached."),
    "sso.jwks.private_key": _("The key set contains private keys; refused."),
    "sso.jwks.invalid": _("This is not a JWK set."),
}


def describe(error: SSOError) -> str:
    """Return the message an operator sees for a configuration error."""
    message = ERROR_MESSAGES.get(error.code, _("The configuration was refused."))
    return f"{message} ({error.code}{': ' + error.detail if error.detail else ''})"


def _formfield(field: Any, **kwargs: Any) -> Any:
    # Django 5.0+ warns unless URL fields say which scheme a bare host gets; providers are https.
    if isinstance(field, models.URLField) and django.VERSION >= (5, 0):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class SecretField(forms.CharField):
    """A write-only secret: blank means "keep", so only a typed value counts as a change."""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class SourceForm(forms.ModelForm):
    """Validate a source; fetch its discovery document when the well-known URL is new."""

    client_secret = SecretField(
        label=_("client secret"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave blank to keep the current one."),
    )
    refetch = False

    class Meta:
        model = Source
        formfield_callback = _formfield
        fields = (
            "name", "slug", "protocol", "enabled", "display_order", "button_label", "button_icon",
            "preset", "preset_options",
            "client_id", "client_secret", "token_endpoint_auth_method",
            "well_known_url", "issuer", "authorization_url", "token_url", "userinfo_url", "jwks_url",
            "jwks", "end_session_url", "request_token_url", "emails_url",
            "scopes", "use_pkce", "require_pkce_support", "extra_authorize_params",
            "signing_algorithms", "trusted_audiences", "fetch_userinfo", "tenant_allowlist", "hosted_domain",
            "profile_subject_field", "profile_email_field", "profile_name_field",
            "profile_email_verified_field",
            "allow_signup", "link_existing_by_email", "email_trusted", "allowed_email_domains",
            "permission_prefix", "permission_claim", "permission_scopes", "permission_app_labels",
            "access_token_audience", "groups_claim", "mirror_groups", "mirror_group_prefix",
            "staff_values", "superuser_values",
            "keep_refresh_token", "revalidate_session", "logout_at_provider", "post_logout_redirect_uri",

            "bearer_audiences", "bearer_require_at_jwt", "bearer_scope_claims", "bearer_service_rule",
            "bearer_allowed_clients", "bearer_create_users", "bearer_delegation", "bearer_opaque_tokens",
            "introspection_url",
        )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metadata: dict[str, Any] | None = None

    def clean_client_secret(self) -> str:
        secret = self.cleaned_data.get("client_secret") or ""
        if not secret and self.instance.pk:
            return self.instance.client_secret
        return secret

    def clean_bearer_service_rule(self) -> str:
        return self.cleaned_data.get("bearer_service_rule") or ServiceRule.CLIENT_ID

    def clean_bearer_scope_claims(self) -> str:
        return self.cleaned_data.get("bearer_scope_claims") or "scope"

    def _discovery_due(self, url: str) -> bool:
        return bool(url) and (self.refetch or not self.instance.pk or "well_known_url" in self.changed_data)

    def clean_preset(self) -> str:
        name = self.cleaned_data.get("preset") or ""
        if name and presets.get(name) is None:
            raise forms.ValidationError(_("No preset “%(name)s”.") % {"name": name})
        return name

    def clean_preset_options(self) -> dict[str, Any]:
        options = self.cleaned_data.get("preset_options") or {}
        if not isinstance(options, dict):
            raise forms.ValidationError(_("A JSON object."))
        return options

    def _preset_name(self, data: dict[str, Any]) -> str:
        # The admin shows the preset read-only, so its form has no such field.
        return data.get("preset", self.instance.preset)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        url = data.get("well_known_url") or ""
        allow_template = entra.accepts_template(preset=self._preset_name(data))
        try:
            if self._discovery_due(url):
                self.metadata = discovery.fetch_metadata(url, allow_tenant_template=allow_template)
                for meta_name, field in discovery.ENDPOINT_FIELDS.items():
                    data[field] = self.metadata.get(meta_name) or ""
                data["issuer"] = self.metadata["issuer"]
        except SSOError as exc:
            self.add_error("well_known_url", describe(exc))
            return data
        self._check_urls(data)
        self._check_protocol(data)
        self._check_issuer_unique(data)
        self._check_tenants(data, allow_template)
        self._check_keys(data)
        self._check_role_mapping(data)
        self._check_profile_fields(data)
        self._check_bearer(data)
        return data

    def _check_tenants(self, data: dict[str, Any], allow_template: bool) -> None:
        issuer = data.get("issuer") or ""
        if entra.is_template(issuer):
            if not allow_template:
                # CFG-07: never a wildcard for a generic source.
                self.add_error(
                    "issuer", _("An issuer with {…} is a template; only the Entra ID preset accepts it.")
                )
            elif not (data.get("tenant_allowlist") or "").split():
                self.add_error(
                    "tenant_allowlist",
                    _("A multi-tenant issuer needs the tenants allowed to sign in, or * for every tenant."),
                )
        tenants = (data.get("tenant_allowlist") or "").replace(",", " ").split()
        if tenants != ["*"] and not all(entra.TENANT_ID.match(t.lower()) for t in tenants):
            self.add_error("tenant_allowlist", _("Tenant ids (GUIDs), space-separated, or * alone."))

    def _check_profile_fields(self, data: dict[str, Any]) -> None:
        for name in (
            "profile_subject_field",
            "profile_email_field",
            "profile_name_field",
            "profile_email_verified_field",
        ):
            value = data.get(name) or ""
            if (
                any(c.isspace() for c in value)
                or ".." in value
                or value.startswith(".")
                or value.endswith(".")
            ):
                self.add_error(name, _("A field name, or a dotted path such as data.id."))

    def _check_urls(self, data: dict[str, Any]) -> None:
        for field in URL_FIELDS:
            if data.get(field):
                try:
                    check_url(data[field], resolve=True)
                except SSOError as exc:
                    self.add_error(field, describe(exc))

    def _check_protocol(self, data: dict[str, Any]) -> None:
        protocol = data.get("protocol")
        needed = ["authorization_url", "token_url"]
        if protocol == Protocol.OAUTH1:
            needed = ["request_token_url", "authorization_url", "token_url", "userinfo_url"]
        elif protocol == Protocol.OAUTH2:
            needed.append("userinfo_url")
        for field in needed:
            if not data.get(field):
                self.add_error(field, _("Required for this protocol (or give a well-known URL)."))
        if protocol == Protocol.OAUTH1 and not data.get("client_secret"):
            # HMAC-SHA1 signs with the consumer secret; without it any request could be forged.
            self.add_error("client_secret", _("OAuth 1.0a needs the consumer secret."))
        if protocol == Protocol.OAUTH1 and data.get("keep_refresh_token"):
            self.add_error("keep_refresh_token", _("OAuth 1.0a has no refresh tokens."))
        if protocol == Protocol.OIDC:
            if not data.get("issuer"):
                self.add_error("issuer", _("OpenID Connect needs the issuer (or a well-known URL)."))
            if not data.get("jwks_url") and not data.get("jwks"):
                self.add_error("jwks_url", _("OpenID Connect needs a JWKS URL or a JWKS."))

    def _check_issuer_unique(self, data: dict[str, Any]) -> None:
        issuer = data.get("issuer")
        if issuer:
            clash = Source.objects.exclude(pk=self.instance.pk).filter(issuer=issuer).first()
            if clash is not None:
                # CFG-02 (RFC 9207 4): two sources with one issuer would make mix-up undetectable.
                self.add_error(
                    "well_known_url" if self.metadata else "issuer",
                    _("The issuer is already used by the source “%(name)s”.") % {"name": clash.name},
                )

    def _check_keys(self, data: dict[str, Any]) -> None:
        if data.get("jwks"):
            try:
                jwks.parse_jwks(data["jwks"])
            except SSOError as exc:
                self.add_error("jwks", describe(exc))
        algorithms = (data.get("signing_algorithms") or "").split()
        if "none" in {a.lower() for a in algorithms}:
            self.add_error("signing_algorithms", _("“none” is never accepted."))
        secret = (data.get("client_secret") or "").encode()
        if any(a.startswith("HS") for a in algorithms) and len(secret) < MIN_HMAC_SECRET_BYTES:
            self.add_error("signing_algorithms", _("HS256 needs a client secret of at least 32 bytes."))

    def _check_role_mapping(self, data: dict[str, Any]) -> None:
        for name in ("permission_prefix", "permission_claim", "groups_claim", "mirror_group_prefix"):
            if any(c.isspace() for c in data.get(name) or ""):
                self.add_error(name, _("No spaces."))
        prefix = data.get("permission_prefix") or ""
        scopes = (data.get("permission_scopes") or "").split()
        if scopes and not prefix:
            self.add_error("permission_scopes", _("Permission scopes need a permission prefix."))
        elif any(not scope.startswith(prefix) for scope in scopes):
            self.add_error("permission_scopes", _("Each must start with the prefix “%(p)s”.") % {"p": prefix})
        for label in (data.get("permission_app_labels") or "").replace(",", " ").split():
            try:
                apps.get_app_config(label)
            except LookupError:
                self.add_error("permission_app_labels", _("No installed app “%(l)s”.") % {"l": label})
        if data.get("mirror_groups") and not data.get("mirror_group_prefix"):
            # Without a prefix a provider group named like a local group would join that group.
            self.add_error("mirror_group_prefix", _("Mirroring groups needs a prefix, e.g. “sso:”."))

    def _check_bearer(self, data: dict[str, Any]) -> None:
        if not (data.get("bearer_audiences") or "").split():
            return
        # Bearer JWTs are told apart by their exact iss and verified with the source's keys.
        if not data.get("issuer"):
            self.add_error("bearer_audiences", _("Bearer tokens need the issuer (or a well-known URL)."))
        if not data.get("jwks_url") and not data.get("jwks"):
            self.add_error("bearer_audiences", _("Bearer tokens need a JWKS URL or a JWKS."))
        for entry in (data.get("bearer_scope_claims") or "").split():
            path = entry.removesuffix("[]")
            if not path or "[" in path or "]" in path:
                self.add_error("bearer_scope_claims", _("“%(e)s” is not a claim path.") % {"e": entry})
        opaque = data.get("bearer_opaque_tokens")
        if opaque == OpaqueTokens.INTROSPECTION and not data.get("introspection_url"):
            self.add_error("introspection_url", _("Introspection needs the introspection URL."))
        if opaque == OpaqueTokens.USERINFO and not data.get("userinfo_url"):
            self.add_error("bearer_opaque_tokens", _("Checking opaque tokens at UserInfo needs its URL."))
        if opaque:
            clash = (
                Source.objects.exclude(pk=self.instance.pk)
                .exclude(bearer_audiences="")
                .exclude(bearer_opaque_tokens="")
                .first()
            )
            if clash is not None:
                # RS-14: an opaque token names no issuer; only one provider may ever be asked.
                self.add_error(
                    "bearer_opaque_tokens",
                    _("The source “%(name)s” already checks opaque tokens; only one may.")
                    % {"name": clash.name},
                )

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.metadata is not None and not self.errors:
            try:
                discovery.apply_metadata(self.instance, self.metadata)
            except SSOError as exc:
                self.add_error("well_known_url", describe(exc))


def instance_data(source: Source) -> dict[str, Any]:
    """Return the form data that would save ``source`` unchanged (the secret left blank: kept)."""
    data = model_to_dict(source, exclude=["id", "provider_metadata", "last_discovery_at"])
    data["client_secret"] = ""
    data["extra_authorize_params"] = json.dumps(data.get("extra_authorize_params") or {})
    data["preset_options"] = json.dumps(data.get("preset_options") or {})
    data["jwks"] = json.dumps(data["jwks"]) if data.get("jwks") else ""
    return data
