"""Example pages: a home page with sign-in buttons, a JSON ``/whoami/``, and its bearer-token twin."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.generic import TemplateView

from django_sso.decorators import bearer_required


def describe_user(request: HttpRequest) -> dict[str, Any]:
    """Return what the site knows about the current user, for /whoami/."""
    user = request.user
    if not user.is_authenticated:
        return {
            "authenticated": False,
            "username": None,
            "email": None,
            "groups": [],
            "permissions": [],
            "source": None,
        }
    if getattr(user, "is_service", False):  # a bearer token's service principal: no user row
        return {
            "authenticated": True,
            "username": user.get_username(),
            "email": None,
            "groups": [],
            "permissions": sorted(user.get_all_permissions()),
            "source": user.source.slug,
        }
    identity = user.sso_identities.select_related("source").order_by("-updated_at").first()
    return {
        "authenticated": True,
        "username": user.get_username(),
        "email": user.email,
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": sorted(user.get_all_permissions()),
        "source": identity.source.slug if identity else None,
    }


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse(describe_user(request))


@bearer_required
def api_whoami(request: HttpRequest) -> JsonResponse:
    """``/whoami/`` for a bearer token, plus its scopes and what kind of principal it gave."""
    token = request.access_token
    return JsonResponse(
        {
            **describe_user(request),
            "scopes": sorted(token.scopes),
            "principal": "service" if token.is_service else "user",
        }
    )


@bearer_required(permissions=["shop.manage_orders"])
def api_orders(request: HttpRequest) -> JsonResponse:
    """The shop's orders, for a token whose scopes grant ``shop.manage_orders``."""
    return JsonResponse({"orders": []})


class HomeView(TemplateView):
    template_name = "home.html"
