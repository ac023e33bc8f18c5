"""Sources by slug and by issuer, held in process memory so hot paths skip the database.

All sources are loaded in one query and kept for ``DJANGO_SSO_SOURCE_CACHE_SECONDS``. A save
or delete in this process clears the cache at once (signals); another process sees the change
within that many seconds. Client secrets are decrypted once per load, not per request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from django_sso.app_settings import app_settings
from django_sso.models import Source

_lock = threading.Lock()
_state: dict[str, Any] = {"loaded_at": float("-inf"), "by_slug": {}, "by_issuer": {}}


def _current() -> dict[str, Any]:
    state = _state
    if time.monotonic() - state["loaded_at"] < app_settings.SOURCE_CACHE_SECONDS:
        return state
    with _lock:
        if time.monotonic() - _state["loaded_at"] >= app_settings.SOURCE_CACHE_SECONDS:
            sources = list(Source.objects.all())
            _state.update(
                by_slug={s.slug: s for s in sources},
                by_issuer={s.issuer: s for s in sources if s.issuer},
                loaded_at=time.monotonic(),
            )
        return _state


def by_slug(slug: str) -> Source | None:
    """Return the source with this slug (enabled or not), or None."""
    return _current()["by_slug"].get(slug)


def by_issuer(issuer: str) -> Source | None:
    """Return the source whose issuer is exactly ``issuer``, or None."""
    return _current()["by_issuer"].get(issuer)


def snapshot() -> tuple[float, dict[str, Source]]:
    """Return when the sources were loaded (a ``time.monotonic()``) and every source by slug.

    For views derived from the loaded sources (``internal/source_map.py``): the load time tells
    whether the sources were reloaded since. The dictionary must not be changed.
    """
    state = _current()
    return state["loaded_at"], state["by_slug"]


def clear() -> None:
    """Forget the loaded sources; the next lookup reloads them."""
    with _lock:
        _state.update(loaded_at=float("-inf"), by_slug={}, by_issuer={})


@receiver(post_save, sender=Source, dispatch_uid="django_sso.source_cache.saved")
@receiver(post_delete, sender=Source, dispatch_uid="django_sso.source_cache.deleted")
def _source_changed(sender: type[Source], **kwargs: Any) -> None:
    clear()
