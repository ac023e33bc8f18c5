"""``bearer_required``: a view that only a bearer token with the right scopes or permissions reaches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from django_sso import bearer
from django_sso.exceptions import BearerError, InsufficientScope, MissingToken
from django_sso.middleware import attach


def scopes_for_permissions(token: Any, permissions: Iterable[str]) -> tuple[str, ...]:
    """Return the scopes that would grant ``permissions`` through the token source's prefix.

    Named in the ``scope`` of a 403 (RFC 6750 3.1) so a client knows what to ask for.
    """
    prefix = token.source.permission_prefix
    if not prefix:
        return ()
    return tuple(f"{prefix}{perm.partition('.')[2] or perm}" for perm in permissions)


def check_access(request: HttpRequest, scopes: Iterable[str] = (), permissions: Iterable[str] = ()) -> None:
    """Authenticate the request by its bearer token if not done yet; raise unless it may pass.

    Raise :class:`MissingToken` (401) without a bearer token (a session sign-in does not count),
    :class:`InsufficientScope` (403) when a scope is missing from the token or a permission from
    ``request.user``, and the token's own error when it does not authenticate.
    """
    if getattr(request, "access_token", None) is None:
        auth = bearer.authenticate(request)
        if auth is None:
            raise MissingToken()
        attach(request, auth)
    token = request.access_token
    scopes, permissions = tuple(scopes), tuple(permissions)
    if not set(scopes) <= token.scopes:
        raise InsufficientScope(detail="missing scope", scopes=scopes)
    if permissions and not request.user.has_perms(permissions):
        raise InsufficientScope(
            detail="missing permission", scopes=scopes or scopes_for_permissions(token, permissions)
        )


def bearer_required(
    view: Callable[..., HttpResponse] | None = None,
    *,
    scopes: Iterable[str] = (),
    permissions: Iterable[str] = (),
) -> Any:
    """Decorate a view so that only a bearer token reaches it, with every scope and permission named.

    ``@bearer_required`` or ``@bearer_required(scopes=["orders:read"],
    permissions=["shop.manage_orders"])``. Scopes are compared exactly with the token's;
    permissions go through ``request.user.has_perms()`` (the token's grants, see
    :mod:`django_sso.principals`). Failures answer as RFC 6750 says: 401 ``invalid_token``, 403
    ``insufficient_scope`` with the scopes needed. Works with or without
    :class:`~django_sso.middleware.BearerTokenMiddleware`, on sync and async views. The view is
    exempt from CSRF checks: only a bearer token, never a cookie, gets through it.
    """
    scopes, permissions = tuple(scopes), tuple(permissions)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        if iscoroutinefunction(func):

            @wraps(func)
            async def wrapped_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                try:
                    # Loading a person's user is a query: off the event loop.
                    await sync_to_async(check_access)(request, scopes, permissions)
                except BearerError as exc:
                    return bearer.error_response(exc)
                return await func(request, *args, **kwargs)

            wrapped_async.csrf_exempt = True  # type: ignore[attr-defined]
            return wrapped_async

        @wraps(func)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                check_access(request, scopes, permissions)
            except BearerError as exc:
                return bearer.error_response(exc)
            return func(request, *args, **kwargs)

        wrapped.csrf_exempt = True  # type: ignore[attr-defined]
        return wrapped

    return decorator(view) if view is not None else decorator
