"""Admin: sources (with discovery on save and a re-fetch action) and identities."""

from __future__ import annotations

from typing import Any

import django
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_sso.exceptions import SSOError
from django_sso.forms import SourceForm, describe
from django_sso.internal import discovery
from django_sso.models import Identity, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ("name", "slug", "protocol", "enabled", "issuer", "last_discovery_at")
    list_filter = ("protocol", "enabled")
    search_fields = ("name", "slug", "issuer", "client_id")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("iss_parameter_supported", "last_discovery_at", "created_at", "updated_at")
    actions = ("refetch_discovery",)
    fieldsets = (
        (
            None,
            {"fields": ("name", "slug", "protocol", "enabled", "display_order", "button_label")},
        ),
        (_("Client"), {"fields": ("client_id", "client_secret", "token_endpoint_auth_method")}),
        (
            _("Discovery (OpenID Connect)"),
            {
                "fields": ("well_known_url", "last_discovery_at", "iss_parameter_supported"),
                "description": _("Give the well-known URL and the endpoints below are filled on save."),
            },
        ),
        (
            _("Endpoints"),
            {
                "fields": (
                    "issuer",
                    "authorization_url",
                    "token_url",
                    "userinfo_url",
                    "jwks_url",
                    "jwks",
                    "end_session_url",
                    "request_token_url",
                ),
                "description": _(
                    "Request-token URL: OAuth 1.0a only. JWKS: only for providers without a JWKS URL."
                ),
            },
        ),
        (
            _("Authorization request"),
            {"fields": ("scopes", "use_pkce", "require_pkce_support", "extra_authorize_params")},
        ),
        (
            _("Token validation"),
            {
                "fields": ("signing_algorithms", "trusted_audiences", "fetch_userinfo"),
                "classes": ("collapse",),
            },
        ),
        (
            _("Sign-in policy"),
            {
                "fields": (
                    "allow_signup",
                    "link_existing_by_email",
                    "email_trusted",
                    "allowed_email_domains",
                )
            },
        ),
        (_("History"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # The admin builds its fields itself, bypassing SourceForm.Meta.formfield_callback: give
        # its URL fields the https default too (Django 5.x warns without it, 6.0 changes it).
        if isinstance(db_field, models.URLField) and django.VERSION >= (5, 0):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.action(description=_("Re-fetch from well-known URL"))
    def refetch_discovery(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            if not source.well_known_url:
                self.message_user(
                    request,
                    _("%(name)s has no well-known URL.") % {"name": source},
                    messages.WARNING,
                )
                continue
            try:
                discovery.refresh(source)
            except SSOError as exc:
                if not source.enabled:
                    source.save(update_fields=["enabled", "updated_at"])
                self.message_user(request, f"{source}: {describe(exc)}", messages.ERROR)
                continue
            source.save()
            self.message_user(
                request, _("%(name)s: discovery refreshed.") % {"name": source}, messages.SUCCESS
            )


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "source", "subject", "updated_at")
    list_filter = ("source",)
    search_fields = ("subject", "user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("source", "subject", "claims", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
