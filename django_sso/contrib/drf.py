"""Django REST framework classes for resource-server mode (``pip install django-sso[drf]``).

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["django_sso.contrib.drf.BearerTokenAuthentication"],
    }

    class OrderList(APIView):
        permission_classes = [HasScopes]
        required_scopes = ["orders:read"]

``request.user`` is the token's user (with the token's permissions, so ``DjangoModelPermissions``
works) or a :class:`~django_sso.principals.ServicePrincipal`; ``request.auth`` is the checked
:class:`~django_sso.internal.access_token.AccessToken`. Refusals carry RFC 6750 challenges.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from django_sso import bearer
from django_sso.decorators import scopes_for_permissions
from django_sso.exceptions import BearerError, InsufficientScope, MissingToken
from django_sso.internal.access_token import AccessToken

_ERROR_ATTRIBUTE = "_django_sso_bearer_error"


class BearerAuthenticationFailed(exceptions.AuthenticationFailed):
    """A bearer token that does not authenticate, with its RFC 6750 status (400, 401 or 503)."""

    def __init__(self, error: BearerError) -> None:
        super().__init__(detail=bearer.DESCRIPTIONS.get(error.code, error.description), code=error.error)
        self.status_code = error.status
        if error.status == 503:
            self.wait = bearer.RETRY_AFTER


class InsufficientScopeDenied(exceptions.PermissionDenied):
    """403 with ``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."``."""

    def __init__(self, scopes: tuple[str, ...]) -> None:
        error = InsufficientScope(scopes=scopes)
        super().__init__(detail=error.description, code=error.error)
        self.auth_header = bearer.www_authenticate(error)


class BearerTokenAuthentication(BaseAuthentication):
    """Authenticate by the ``Authorization: Bearer`` token (``django_sso.bearer``).

    Returns None for a request without one, so other classes (e.g. session) may still apply.
    """

    def authenticate(self, request: Any) -> tuple[Any, AccessToken] | None:
        django_request = request._request
        done = getattr(django_request, "access_token", None)
        if done is not None:  # BearerTokenMiddleware already checked it
            return django_request.user, done
        try:
            auth = bearer.authenticate(django_request)
        except BearerError as exc:
            setattr(django_request, _ERROR_ATTRIBUTE, exc)
            raise BearerAuthenticationFailed(exc) from exc
        if auth is None:
            return None
        django_request.access_token = auth.token
        return auth.principal, auth.token

    def authenticate_header(self, request: Any) -> str:
        error = getattr(request._request, _ERROR_ATTRIBUTE, None) or MissingToken()
        return bearer.www_authenticate(error)


class HasScopes(BasePermission):
    """Allow a request whose bearer token has every scope in the view's ``required_scopes``.

    Also checks the view's ``required_permissions`` against ``request.user.has_perms()``. A
    request without a bearer token gets 401 (when nobody authenticated it) or 403; a token that
    lacks something gets 403 ``insufficient_scope`` naming the scopes needed.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, AccessToken):
            return False
        scopes = tuple(getattr(view, "required_scopes", ()))
        permissions = tuple(getattr(view, "required_permissions", ()))
        if not set(scopes) <= token.scopes:
            raise InsufficientScopeDenied(scopes)
        if permissions and not request.user.has_perms(permissions):
            raise InsufficientScopeDenied(scopes or scopes_for_permissions(token, permissions))
        return True
