"""Admin: sources (with discovery on save, a re-fetch action, group mapping rows), identities
(with the sessions they opened, which the operator can end), and on the user page what each
source's role mapping granted."""

from __future__ import annotations

from typing import Any

import django
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_sso import logout, presets, sessions
from django_sso.app_settings import app_settings
from django_sso.checks import audience_clash_message, audience_clashes
from django_sso.exceptions import SSOError
from django_sso.forms import SourceForm, describe
from django_sso.internal import discovery
from django_sso.models import Grant, GroupMapping, Identity, Source, SSOSession
from django_sso.presets.form import PresetForm


class GroupMappingInline(admin.TabularInline):
    model = GroupMapping
    extra = 0
    fields = ("value", "group")
    verbose_name = _("group mapping (provider value → Django group)")
    verbose_name_plural = _("group mappings (provider value → Django group)")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    inlines = (GroupMappingInline,)
    list_display = ("name", "slug", "protocol", "preset", "enabled", "issuer", "last_discovery_at")
    list_filter = ("protocol", "preset", "enabled")
    search_fields = ("name", "slug", "issuer", "client_id")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "preset",
        "preset_options",
        "iss_parameter_supported",
        "last_discovery_at",
        "created_at",
        "updated_at",
        "urls_to_register",
    )
    actions = ("refetch_discovery",)
    change_list_template = "admin/django_sso/source/change_list.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "slug",
                    "protocol",
                    "enabled",
                    "display_order",
                    "button_label",
                    "button_icon",
                    "preset",
                    "preset_options",
                )
            },
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
                    "emails_url",
                    "introspection_url",
                ),
                "description": _(
                    "Request-token URL: OAuth 1.0a only (the token URL is then its access-token URL). "
                    "JWKS: only for providers without a JWKS URL."
                ),
            },
        ),
        (
            _("Profile (OAuth 2 and OAuth 1 sources)"),
            {
                "fields": (
                    "profile_subject_field",
                    "profile_email_field",
                    "profile_name_field",
                    "profile_email_verified_field",
                ),
                "classes": ("collapse",),
                "description": _(
                    "Without an ID token, which fields of the profile URL's answer are the person. "
                    "Dotted paths reach nested fields."
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
                "fields": (
                    "signing_algorithms",
                    "trusted_audiences",
                    "fetch_userinfo",
                    "tenant_allowlist",
                    "hosted_domain",
                ),
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
        (
            _("Role mapping"),
            {
                "fields": (
                    "permission_prefix",
                    "permission_claim",
                    "permission_scopes",
                    "permission_app_labels",
                    "access_token_audience",
                    "groups_claim",
                    "mirror_groups",
                    "mirror_group_prefix",
                    "staff_values",
                    "superuser_values",
                ),
                "description": _(
                    "Applied at every sign-in: what the provider grants is added, what it no longer "
                    "grants is removed, what was granted by hand stays. Group mappings are below."
                ),
            },
        ),
        (
            _("Sessions and sign-out"),
            {
                "fields": (
                    "keep_refresh_token",
                    "revalidate_session",
                    "logout_at_provider",
                    "post_logout_redirect_uri",
                    "urls_to_register",
                )
            },
        ),
        (
            _("Resource server (bearer tokens)"),
            {
                "fields": (
                    "bearer_audiences",
                    "bearer_require_at_jwt",
                    "bearer_scope_claims",
                    "bearer_service_rule",
                    "bearer_allowed_clients",
                    "bearer_create_users",
                    "bearer_delegation",
                    "bearer_opaque_tokens",
                ),
                "description": _(
                    "Access tokens from this source authenticate calls to this site's API when their "
                    "audience is listed. Scopes become permissions through the permission prefix above."
                ),
            },
        ),
        (_("History"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description=_("URLs to register at the provider"))
    def urls_to_register(self, obj: Source) -> str:
        if not obj.pk or not obj.slug:
            return "-"
        base = (app_settings.REDIRECT_URI_BASE or "").rstrip("/")
        urls = {
            _("redirect URI"): base + reverse("django_sso:callback", args=[obj.slug]),
            _("post-logout redirect URI"): logout.post_logout_redirect_uri(obj),
            _("back-channel logout URI"): base + reverse("django_sso:backchannel_logout", args=[obj.slug]),
            _("front-channel logout URI"): base + reverse("django_sso:frontchannel_logout", args=[obj.slug]),
        }
        return "\n".join(f"{label}: {url}" for label, url in urls.items())

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if obj.superuser_value_list and not app_settings.ALLOW_SUPERUSER_MAPPING:
            self.message_user(
                request,
                _("Superuser values are ignored while DJANGO_SSO_ALLOW_SUPERUSER_MAPPING is off."),
                messages.WARNING,
            )
        clashes = audience_clashes(Source.objects.all())
        if obj.slug in clashes:
            self.message_user(request, audience_clash_message(clashes[obj.slug]), messages.WARNING)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # The admin builds its fields itself, bypassing SourceForm.Meta.formfield_callback: give
        # its URL fields the https default too (Django 5.x warns without it, 6.0 changes it).
        if isinstance(db_field, models.URLField) and django.VERSION >= (5, 0):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("add-from-preset/", view(self.preset_choose_view), name="django_sso_source_preset"),
            path(
                "add-from-preset/<slug:name>/",
                view(self.preset_add_view),
                name="django_sso_source_preset_add",
            ),
            *super().get_urls(),
        ]

    def _preset_context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }

    def preset_choose_view(self, request: HttpRequest) -> HttpResponse:
        """List the presets; each links to its own short form."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = self._preset_context(
            request, _("Add a source from a preset"), presets=list(presets.PRESETS.values())
        )
        return TemplateResponse(request, "admin/django_sso/source/preset_choose.html", context)

    def preset_add_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """Ask what the preset needs, create the source, go to its change page."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        preset = presets.get(name)
        if preset is None:
            raise Http404
        form = PresetForm(preset, request.POST or None)
        if request.method == "POST" and form.is_valid():
            source = form.save()
            self.log_addition(request, source, [{"added": {}}])
            self.message_user(
                request,
                _("%(name)s was added from the %(preset)s preset.")
                % {"name": source, "preset": preset.label},
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:django_sso_source_change", args=[source.pk]))
        context = self._preset_context(
            request, _("Add %(preset)s source") % {"preset": preset.label}, form=form, preset=preset
        )
        return TemplateResponse(request, "admin/django_sso/source/preset_form.html", context)

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


class SSOSessionInline(admin.TabularInline):
    """The sessions an identity's sign-ins opened; deleting a row ends that session."""

    model = SSOSession
    extra = 0
    fields = ("created_at", "sid", "still_open")
    readonly_fields = fields
    verbose_name = _("open session")
    verbose_name_plural = _("open sessions (delete a row to end it)")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("still open"), boolean=True)
    def still_open(self, obj: SSOSession) -> bool:
        # Expired sessions leave their record until sso_clearsessions runs.
        return sessions.exists(obj)


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "source", "subject", "session_count", "updated_at")
    list_filter = ("source",)
    search_fields = ("subject", "user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("source", "subject", "claims", "tokens", "created_at", "updated_at")
    inlines = (SSOSessionInline,)
    actions = ("end_sessions",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Identity]:
        return super().get_queryset(request).annotate(open_sessions=Count("sso_sessions"))

    @admin.display(description=_("open sessions"), ordering="open_sessions")
    def session_count(self, obj: Identity) -> int:
        return obj.open_sessions

    @admin.display(description=_("kept tokens"))
    def tokens(self, obj: Identity) -> str:
        # ACC-08: whether tokens are kept and until when, never the tokens themselves.
        token_set = getattr(obj, "token_set", None)
        if token_set is None:
            return "-"
        refresh = _("with a refresh token") if token_set.refresh_token else _("no refresh token")
        expires = f"{_('access token expires')} {token_set.expires_at:%Y-%m-%d %H:%M:%S}"
        return f"{token_set.scope} · {refresh} · {expires}"

    @admin.action(description=_("End the SSO sessions of the selected identities"))
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[Identity]) -> None:
        ended = sessions.end(SSOSession.objects.filter(identity__in=queryset))
        self.message_user(
            request,
            ngettext("%(count)d session ended.", "%(count)d sessions ended.", ended) % {"count": ended},
            messages.SUCCESS,
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is SSOSession:
            formset.save(commit=False)
            sessions.end(formset.deleted_objects)
            return
        super().save_formset(request, form, formset, change)


class GrantInline(admin.TabularInline):
    """Read-only: what each source's role mapping granted this user, and when.

    Deleting a row keeps the permission, group or flag as if given by hand: the mapping will
    not take it back.
    """

    model = Grant
    fk_name = "user"
    extra = 0
    fields = ("source", "kind", "target", "granted_at")
    readonly_fields = fields
    verbose_name = _("granted by single sign-on")
    verbose_name_plural = _("granted by single sign-on")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Grant]:
        return super().get_queryset(request).select_related("source", "permission__content_type", "group")

    @admin.display(description=_("granted"))
    def target(self, obj: Grant) -> str:
        return obj.target

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _add_grants_to_user_admin(site: admin.AdminSite) -> None:
    """Show Grant rows on the user page when the user model uses Django's own UserAdmin."""
    User = get_user_model()
    current = site._registry.get(User)
    if type(current) is not UserAdmin:
        return  # a site's own user admin: add GrantInline to it yourself

    class SSOUserAdmin(UserAdmin):
        inlines = (*UserAdmin.inlines, GrantInline)

    site.unregister(User)
    site.register(User, SSOUserAdmin)


_add_grants_to_user_admin(admin.site)
