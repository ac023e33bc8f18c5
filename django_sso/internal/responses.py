"""Response helpers shared by the browser endpoints."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect


class HttpResponseSeeOther(HttpResponseRedirect):
    """303: the browser follows with a GET, never re-sending a form (RFC 9700 4.12)."""

    status_code = 303


def no_store(response: HttpResponse) -> HttpResponse:
    """Mark ``response`` uncacheable and keep its URL out of ``Referer`` headers (RED-03)."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
