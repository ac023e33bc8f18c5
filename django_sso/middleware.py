"""``BearerTokenMiddleware``: requests with ``Authorization: Bearer`` authenticate by their token.

Put it after ``django.contrib.auth.middleware.AuthenticationMiddleware`` (system check
``django_sso.E006``). A request without a bearer token passes untouched (session sign-in keeps
working on the same site). One with a valid token gets ``request.user`` (the token's user or a
:class:`~django_sso.principals.ServicePrincipal`) and ``request.access_token`` (the checked
:class:`~django_sso.internal.access_token.AccessToken`); the session is not consulted. One with
a token that does not authenticate is answered at once: 400/401 with ``WWW-Authenticate: Bearer``
(RFC 6750 3.1), or 503 when the provider cannot be asked. Enforcing scopes and permissions is the
view's business: :func:`django_sso.decorators.bearer_required`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from django_sso import bearer
from django_sso.exceptions import BearerError


def attach(request: HttpRequest, auth: bearer.BearerAuth) -> None:
    """Make the bearer principal the request's user (``request.user`` and ``request.auser()``)."""
    principal = auth.principal

    async def auser() -> Any:
        return principal

    request.user = principal
    request.auser = auser
    request.access_token = auth.token


class BearerTokenMiddleware:
    """Authenticate requests that carry a bearer token; answer RFC 6750 errors for bad ones."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            auth = bearer.authenticate(request)
        except BearerError as exc:
            return bearer.error_response(exc)
        if auth is not None:
            attach(request, auth)
        return self.get_response(request)
