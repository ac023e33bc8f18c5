"""Re-validate SSO sessions against the provider while they are used.

For sources with ``revalidate_session``: once the stored access token has expired, the next
request refreshes it; when the provider refuses (the refresh token was revoked, or a refreshed
ID token does not match), the user is signed out before the view runs. While the token is valid
a request costs nothing: the expiry is kept in the session itself, so there is no query and no
call to the provider. Add after ``AuthenticationMiddleware``::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_sso.session_middleware.SessionRevalidationMiddleware",
        ...,
    ]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.contrib import auth
from django.http import HttpRequest, HttpResponse

from django_sso import sessions, tokens
from django_sso.app_settings import app_settings
from django_sso.exceptions import ReauthenticationRequired, SSOError
from django_sso.models import Identity

logger = logging.getLogger("django_sso")


class SessionRevalidationMiddleware:
    """Refresh the session's access token when it expires; sign out when the provider refuses."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        state = request.session.get(sessions.SESSION_KEY)
        if state and state.get("revalidate") and time.time() >= state.get("valid_until", 0):
            self.revalidate(request, state)
        return self.get_response(request)

    def revalidate(self, request: HttpRequest, state: dict[str, Any]) -> None:
        """Bring the session's tokens up to date, or sign the user out."""
        identity = Identity.objects.select_related("source").filter(pk=state.get("identity")).first()
        if identity is None or identity.user_id != request.user.pk:
            self.sign_out(request, "sso.revalidate.no_identity", identity)
            return
        if not identity.source.revalidate_session:
            request.session[sessions.SESSION_KEY] = {**state, "revalidate": False}
            return
        try:
            token_set = tokens.valid_token_set(identity)
        except ReauthenticationRequired as exc:
            self.sign_out(request, exc.code, identity)
            return
        except SSOError as exc:
            # The provider is unreachable or broken: the session goes on, and is checked again
            # after a pause rather than costing every request a provider timeout.
            logger.warning("sso.revalidate.deferred code=%s source=%s", exc.code, identity.source.slug)
            valid_until = time.time() + app_settings.REVALIDATE_RETRY
        else:
            valid_until = token_set.expires_at.timestamp() - app_settings.REFRESH_MARGIN
        request.session[sessions.SESSION_KEY] = {**state, "valid_until": valid_until}

    def sign_out(self, request: HttpRequest, code: str, identity: Identity | None) -> None:
        """End the session; the request goes on as anonymous."""
        logger.info(
            "sso.revalidate.signed_out code=%s source=%s",
            code,
            identity.source.slug if identity else "-",
        )
        auth.logout(request)
