"""Browser endpoints: start a sign-in, finish it, sign out, manage linked accounts.

Outcomes are overridable methods.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.contrib import auth
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from django_sso import logout, sessions, signals, tokens
from django_sso.app_settings import app_settings
from django_sso.exceptions import ConfigurationError, SourceDisabled, SSOError
from django_sso.internal import callback, oauth1, oauth2, source_cache
from django_sso.internal import flow as flows
from django_sso.internal.redirects import safe_next
from django_sso.internal.responses import HttpResponseSeeOther, no_store
from django_sso.models import Identity, Source

logger = logging.getLogger("django_sso")

#: Per-request authorization parameters a sign-in link may pass on (AZQ-01: nothing else).
#: ``audience`` (Auth0), ``resource`` (RFC 8707), ``organization``/``org_id`` (Auth0, Okta
#: organizations), ``domain_hint`` (Entra) choose what the provider does, never where it answers.
PASS_THROUGH_PARAMS = (
    "login_hint",
    "prompt",
    "max_age",
    "acr_values",
    "ui_locales",
    "claims",
    "resource",
    "audience",
    "organization",
    "org_id",
    "domain_hint",
)
ALLOWED_PROMPTS = frozenset({"none", "login", "consent", "select_account", "create"})
MAX_PARAM_LENGTH = 256
#: The claims request (OIDC Core 5.5) is a JSON object; it may be longer than the other values.
MAX_CLAIMS_LENGTH = 2048


def redirect_uri(source: Source) -> str:
    """Return the callback URL registered at the provider, from configuration only (AZQ-04)."""
    base = app_settings.REDIRECT_URI_BASE
    if not base:
        raise ConfigurationError("sso.config.no_redirect_base", "DJANGO_SSO_REDIRECT_URI_BASE is not set")
    return base.rstrip("/") + reverse("django_sso:callback", args=[source.slug])


class SSOErrorMixin:
    """The one funnel for browser-flow failures: log with a correlation id, render a page."""

    error_template_name = "django_sso/error.html"

    def login_failure(self, request: HttpRequest, error: SSOError, source: Source | None) -> HttpResponse:
        correlation_id = uuid.uuid4().hex[:12]
        logger.warning(
            "sso.sign_in.failed code=%s source=%s correlation_id=%s detail=%s",
            error.code,
            source.slug if source else "-",
            correlation_id,
            error.detail,
        )
        signals.sign_in_failed.send(sender=Source, request=request, source=source, error=error)
        if error.status >= 500 and request.session.modified:
            # SessionMiddleware saves nothing on a 5xx: persist the consumed flow here, so a
            # failed callback's state cannot be replayed (AZR-02). The cache store consumed it in
            # the cache and left the session untouched: nothing is saved, no session is created.
            request.session.save()
        context = {
            "message": error.public_message,
            "code": error.code,
            "correlation_id": correlation_id,
            "source": source,
        }
        return no_store(TemplateResponse(request, self.error_template_name, context, status=error.status))


def _enabled_source(slug: str) -> Source:
    source = source_cache.by_slug(slug)
    if source is None or not source.enabled:
        raise SourceDisabled()
    return source


def _claims_request(value: str) -> str | None:
    """Return a claims request (OIDC Core 5.5) re-serialised compactly, or None if malformed."""
    if len(value) > MAX_CLAIMS_LENGTH:
        return None
    try:
        claims = json.loads(value)
    except ValueError:
        return None
    if not isinstance(claims, dict) or not set(claims) <= {"userinfo", "id_token"}:
        return None
    return json.dumps(claims, separators=(",", ":"))


def _is_resource_indicator(value: str) -> bool:
    """RFC 8707 2: an absolute URI without a fragment."""
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path) and "#" not in value


@method_decorator(never_cache, name="dispatch")
class LoginView(SSOErrorMixin, View):
    """``/sso/<slug>/login/``: a CSRF-protected POST starts the flow; a GET asks first (ACC-06)."""

    confirm_template_name = "django_sso/login_confirm.html"

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        try:
            source = _enabled_source(slug)
        except SSOError as exc:
            return self.login_failure(request, exc, None)
        if app_settings.LOGIN_ON_GET:
            return self.start(request, source, request.GET)
        context = {"source": source, "next": safe_next(request, request.GET.get("next")) or ""}
        return TemplateResponse(request, self.confirm_template_name, context)

    @method_decorator(csrf_protect)
    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        try:
            source = _enabled_source(slug)
        except SSOError as exc:
            return self.login_failure(request, exc, None)
        params = request.POST.copy()
        for key, value in request.GET.items():
            params.setdefault(key, value)
        return self.start(request, source, params)

    def authorization_params(self, params: Any) -> dict[str, str]:
        """Return the per-request parameters to pass on; never scope, redirect_uri or the like.

        A value that is not well-formed is dropped, not passed on half-right.
        """
        extra = {k: params[k] for k in PASS_THROUGH_PARAMS if params.get(k)}
        if "prompt" in extra and not set(extra["prompt"].split()) <= ALLOWED_PROMPTS:
            del extra["prompt"]
        if "max_age" in extra and not extra["max_age"].isdigit():
            del extra["max_age"]
        if "claims" in extra:
            claims = _claims_request(extra["claims"])
            if claims is None:
                del extra["claims"]
            else:
                extra["claims"] = claims
        if "resource" in extra and not _is_resource_indicator(extra["resource"]):
            del extra["resource"]
        return {k: v if k == "claims" else v[:MAX_PARAM_LENGTH] for k, v in extra.items()}

    def start(self, request: HttpRequest, source: Source, params: Any) -> HttpResponse:
        """Create the flow and redirect to the provider."""
        try:
            extra = self.authorization_params(params)
            flow = flows.Flow(
                source_id=source.pk,
                source_slug=source.slug,
                issuer=source.issuer,
                redirect_uri=redirect_uri(source),
                next_url=safe_next(request, params.get("next")) or "",
                max_age=int(extra["max_age"]) if "max_age" in extra else None,
            )
            if source.is_oauth1:
                url = oauth1.authorization_url(source, flow)
            else:
                url = oauth2.authorization_url(source, flow, extra)
        except SSOError as exc:
            return self.login_failure(request, exc, source)
        flows.save(request, flow)
        return flows.bind_response(request, no_store(HttpResponseRedirect(url)))


@method_decorator(never_cache, name="dispatch")
class CallbackView(SSOErrorMixin, View):
    """``/sso/<slug>/callback/``: validate, provision, log in, redirect (303) to ``next``."""

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        source = source_cache.by_slug(slug)
        try:
            if source is None or not source.enabled:
                raise SourceDisabled()
            completed = callback.complete(request, source)
            user = auth.authenticate(
                request, sso_source=source, sso_claims=completed.claims, sso_token=completed.token
            )
            if user is None:
                raise SSOError("sso.backend.not_configured", "SSOBackend is not in AUTHENTICATION_BACKENDS")
        except SSOError as exc:
            return self.login_failure(request, exc, source)
        return self.login_success(request, source, user, completed)

    def login_success(self, request: HttpRequest, source: Source, user: Any, completed: Any) -> HttpResponse:
        """Log the user in (new, empty session, ACC-07) and redirect to the flow's ``next``."""
        # RFC 9700 4.2.4 / session fixation: login() alone keeps whatever the pre-login session
        # held (planted by an attacker, or other flows' verifiers); start from an empty session.
        sessions.forget(request)
        request.session.flush()
        auth.login(request, user, backend="django_sso.backends.SSOBackend")
        identity = user.sso_identity
        if source.keep_refresh_token:
            tokens.store(identity, completed.token, completed.claims)
        sessions.record(request, identity, completed.claims, completed.token)
        signals.sign_in_succeeded.send(
            sender=Source,
            request=request,
            user=user,
            source=source,
            identity=identity,
            created=user.sso_identity_created,
        )
        target = completed.flow.next_url or resolve_url(app_settings.LOGIN_REDIRECT_URL)
        return flows.unbind_response(request, no_store(HttpResponseSeeOther(target)))

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        """form_post is not requested; a POST here is refused without touching any flow."""
        return no_store(HttpResponse(status=405, headers={"Allow": "GET"}))


@method_decorator(never_cache, name="dispatch")
class LogoutView(View):
    """``/sso/logout/``: POST (with CSRF) signs out, here and at the provider; GET only asks (LGO-01)."""

    template_name = "django_sso/logout_confirm.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return TemplateResponse(
            request, self.template_name, {"next": safe_next(request, request.GET.get("next"))}
        )

    @method_decorator(csrf_protect)
    def post(self, request: HttpRequest) -> HttpResponse:
        target = safe_next(request, request.POST.get("next")) or resolve_url(app_settings.LOGOUT_REDIRECT_URL)
        record = sessions.current(request)
        # LGO-01: the local session ends first, whatever happens at the provider afterwards.
        auth.logout(request)
        provider_url = logout.provider_logout_url(request, record, target) if record else None
        return no_store(HttpResponseSeeOther(provider_url or target))


@method_decorator([never_cache, login_required], name="dispatch")
class ConnectedAccountsView(View):
    """``/sso/accounts/``: the user's linked sources; a POST (with CSRF) unlinks one.

    The last way to sign in is never unlinked: without a usable password, at least one other
    identity at an enabled source must remain.
    """

    template_name = "django_sso/connected_accounts.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request)

    @method_decorator(csrf_protect)
    def post(self, request: HttpRequest) -> HttpResponse:
        wanted = request.POST.get("identity", "")
        identities = request.user.sso_identities.select_related("source")
        identity = identities.filter(pk=wanted).first() if wanted.isdigit() else None
        if identity is None:
            return self.render(request, _("That account is not linked to you."), status=400)
        if not self.may_unlink(request.user, identity):
            message = _("This is your only way to sign in; it cannot be unlinked.")
            return self.render(request, message, status=400)
        self.unlink(request, identity)
        return no_store(HttpResponseSeeOther(reverse("django_sso:accounts")))

    def may_unlink(self, user: Any, identity: Identity) -> bool:
        """Return whether ``user`` could still sign in without ``identity``."""
        if user.has_usable_password():
            return True
        return user.sso_identities.exclude(pk=identity.pk).filter(source__enabled=True).exists()

    def unlink(self, request: HttpRequest, identity: Identity) -> None:
        """Delete the link with its tokens and session records; the current session goes on."""
        state = request.session.get(sessions.SESSION_KEY) or {}
        if state.get("identity") == identity.pk:
            del request.session[sessions.SESSION_KEY]
        logger.info("sso.identity.unlinked source=%s identity=%s", identity.source.slug, identity.pk)
        identity.delete()

    def render(self, request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
        identities = request.user.sso_identities.select_related("source").order_by("source__name")
        context = {"identities": identities, "error": error}
        return no_store(TemplateResponse(request, self.template_name, context, status=status))
