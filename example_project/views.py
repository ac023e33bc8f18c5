"""Example pages: a home page with sign-in buttons and a JSON ``/whoami/``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.generic import TemplateView


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


class HomeView(TemplateView):
    template_name = "home.html"
