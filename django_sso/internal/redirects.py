"""Where a browser may be sent after signing in or out: same-origin paths only (RED-01)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from django.utils.http import url_has_allowed_host_and_scheme

if TYPE_CHECKING:
    from django.http import HttpRequest

MAX_NEXT_LENGTH = 2048


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    return not any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in value)


def safe_next(request: HttpRequest, candidate: str | None) -> str | None:
    """Return ``candidate`` when it is a same-origin path, else None.

    A path must start with one ``/``, hold no backslash or control character (also after one
    round of percent-decoding, so ``/%5Cevil.com`` and ``/%09/evil.com`` fail) and pass Django's
    ``url_has_allowed_host_and_scheme`` for this host.
    """
    if not candidate or len(candidate) > MAX_NEXT_LENGTH:
        return None
    if not (_is_local_path(candidate) and _is_local_path(unquote(candidate))):
        return None
    if not url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    return candidate
