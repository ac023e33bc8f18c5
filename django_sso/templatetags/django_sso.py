"""``{% load django_sso %}{% sso_buttons %}``: one sign-in button (a small POST form) per source."""

from __future__ import annotations

from typing import Any

from django import template

from django_sso.internal.redirects import safe_next
from django_sso.models import Source

register = template.Library()


@register.inclusion_tag("django_sso/buttons.html", takes_context=True)
def sso_buttons(context: dict[str, Any], next: str | None = None) -> dict[str, Any]:
    """Render the enabled sources' buttons; ``next`` defaults to the request's ``?next=``."""
    request = context.get("request")
    candidate = next if next is not None else (request.GET.get("next") if request else None)
    return {
        "sources": list(Source.objects.enabled()),
        "next": safe_next(request, candidate) if request else None,
        "csrf_token": context.get("csrf_token"),
        "request": request,
    }
