"""Sign-out beyond this site: at the provider, and by the provider.

* RP-Initiated Logout 1.0: after the local sign-out, :func:`provider_logout_url` sends the
  browser to the source's end-session endpoint; the provider returns it to
  :class:`LoggedOutView`.
* Back-Channel Logout 1.0: :class:`BackChannelLogoutView` takes a logout token from the
  provider and ends the matching sessions on every worker.
* Front-Channel Logout 1.0: :class:`FrontChannelLogoutView` ends the browser's own session when
  ``iss`` and ``sid`` name it.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from django.contrib import auth
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from django_sso import sessions
from django_sso.app_settings import app_settings
from django_sso.exceptions import SSOError
from django_sso.internal import logout_token
from django_sso.internal.responses import HttpResponseSeeOther, no_store
from django_sso.models import Source, SSOSession

logger = logging.getLogger("django_sso")

#: Where the new (signed-out) session keeps the pending RP-initiated logout.
LOGOUT_STATE_KEY = "_django_sso_logout"


def post_logout_redirect_uri(source: Source) -> str:
    """Return the URI the provider sends the browser back to: configured, or ``/sso/logged-out/``."""
    if source.post_logout_redirect_uri:
        return source.post_logout_redirect_uri
    base = (app_settings.REDIRECT_URI_BASE or "").rstrip("/")
    return base + reverse("django_sso:logged_out")


def provider_logout_url(request: HttpRequest, record: SSOSession, next_url: str) -> str | None:
    """Return where to send the browser to sign out at the provider too, or None.

    Call after the local sign-out: the ``state`` is bound to the new session, with ``next_url``
    kept server-side for :class:`LoggedOutView`. OpenID Connect sources get RP-Initiated
    Logout's ``id_token_hint``, ``client_id``, ``post_logout_redirect_uri`` and ``state``; a
    plain OAuth 2 source's logout URL is used as configured.
    """
    source = record.identity.source
    if not (source.logout_at_provider and source.end_session_url):
        return None
    if not source.is_oidc:
        return source.end_session_url
    state = secrets.token_urlsafe(32)
    request.session[LOGOUT_STATE_KEY] = {"state": state, "next": next_url, "created_at": time.time()}
    params = {
        "client_id": source.client_id,
        "post_logout_redirect_uri": post_logout_redirect_uri(source),
        "state": state,
    }
    if record.id_token:
        params = {"id_token_hint": record.id_token, **params}
    separator = "&" if "?" in source.end_session_url else "?"
    return f"{source.end_session_url}{separator}{urlencode(params)}"


@method_decorator(never_cache, name="dispatch")
class LoggedOutView(View):
    """``/sso/logged-out/``: the provider's way back after signing out there (LGO-02).

    Only the ``state`` this browser's session is waiting for leads on, to the ``next`` kept at
    sign-out; any other, or none, shows the same neutral page. Nobody is signed in or out here.
    """

    template_name = "django_sso/logged_out.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        pending = request.session.pop(LOGOUT_STATE_KEY, None)
        state = request.GET.get("state", "")
        if (
            isinstance(pending, dict)
            and state
            and hmac.compare_digest(state.encode(), str(pending.get("state", "")).encode())
            and time.time() - pending.get("created_at", 0) <= app_settings.FLOW_TIMEOUT
        ):
            return no_store(HttpResponseSeeOther(pending["next"]))
        context = {"home": resolve_url(app_settings.LOGOUT_REDIRECT_URL)}
        return no_store(TemplateResponse(request, self.template_name, context))


@method_decorator(csrf_exempt, name="dispatch")
class BackChannelLogoutView(View):
    """``/sso/<slug>/backchannel-logout/``: the provider signs a person out (BCL 2.5-2.8).

    A form-encoded POST with one ``logout_token``. A valid token ends every session of its
    ``sub`` at this source, or those with its ``sid``: 200 with ``Cache-Control: no-store``.
    Anything else, a replayed token included, is 400 and ends nothing.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return self.failure(SSOError("sso.backchannel.bad_method"), kwargs["slug"])
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        try:
            source = Source.objects.filter(slug=slug).first()
            if source is None:
                raise SSOError("sso.backchannel.unknown_source")
            content_type = request.content_type or ""
            tokens = request.POST.getlist("logout_token")
            if content_type != "application/x-www-form-urlencoded" or len(tokens) != 1:
                raise SSOError("sso.backchannel.bad_request")
            named = logout_token.validate(source, tokens[0])
        except SSOError as exc:
            return self.failure(exc, slug)
        records = SSOSession.objects.filter(identity__source=source)
        if named.sid is not None:
            records = records.filter(sid=named.sid)
        if named.sub is not None:
            records = records.filter(identity__subject=named.sub)
        ended = sessions.end(records)
        logger.info("sso.backchannel.logout source=%s sessions=%d", slug, ended)
        return no_store(HttpResponse(status=200))

    def failure(self, error: SSOError, slug: str) -> HttpResponse:
        logger.warning("sso.backchannel.refused code=%s source=%s detail=%s", error.code, slug, error.detail)
        return no_store(JsonResponse({"error": "invalid_request"}, status=400))


@method_decorator([never_cache, xframe_options_exempt], name="dispatch")
class FrontChannelLogoutView(View):
    """``/sso/<slug>/frontchannel-logout/?iss=...&sid=...``, loaded by the provider in an iframe.

    Ends the browser's session only when it was opened through this source and both ``iss`` and
    ``sid`` match it (FCL 2, LGO-10); otherwise does nothing. The page shows nothing either way.
    Browsers do not send ``SameSite=Lax`` cookies to a cross-site iframe, so this works only with
    ``SESSION_COOKIE_SAMESITE = "None"``; back-channel logout is the dependable one.
    """

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        record = sessions.current(request)
        iss, sid = request.GET.get("iss", ""), request.GET.get("sid", "")
        if record is not None and iss and sid and record.sid:
            source = record.identity.source
            if (
                source.slug == slug
                and iss == source.issuer
                and hmac.compare_digest(sid.encode(), record.sid.encode())
            ):
                auth.logout(request)
                logger.info("sso.frontchannel.logout source=%s", slug)
        return no_store(HttpResponse(b"", content_type="text/plain"))
