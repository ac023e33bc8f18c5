"""The sources trusted for bearer tokens, by issuer, held in process memory.

A bearer token names its issuer; finding the source for it must not cost a query per request.
The map is rebuilt when a source is saved or deleted in this process (signals, connected in
``apps.py``) and otherwise read again after ``SOURCE_CACHE_SECONDS``, so a change made by another
process applies within that time. An unchanged source keeps its Python object across rebuilds:
verified tokens remembered for it (``internal/token_cache.py``) stay valid, those of a changed or
removed source do not.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django_sso.app_settings import app_settings
from django_sso.models import Source

logger = logging.getLogger("django_sso")


@dataclass(frozen=True)
class SourceMap:
    """One snapshot: enabled sources with API audiences, by issuer and by primary key."""

    by_issuer: dict[str, Source] = field(default_factory=dict)
    by_pk: dict[int, Source] = field(default_factory=dict)
    #: The one source that checks opaque tokens (they name no issuer); None when none or several.
    opaque: Source | None = None
    loaded_at: float = float("-inf")


_lock = threading.Lock()
_current = SourceMap()
_stale = True


def _fingerprint(source: Source) -> tuple[Any, ...]:
    return tuple(getattr(source, f.attname) for f in Source._meta.concrete_fields)


def _load(previous: SourceMap) -> SourceMap:
    by_issuer: dict[str, Source] = {}
    by_pk: dict[int, Source] = {}
    opaque: list[Source] = []
    for source in Source.objects.filter(enabled=True).exclude(bearer_audiences=""):
        if not source.bearer_audience_list:
            continue
        kept = previous.by_pk.get(source.pk)
        if kept is not None and _fingerprint(kept) == _fingerprint(source):
            source = kept
        by_pk[source.pk] = source
        if source.issuer:
            by_issuer[source.issuer] = source
        if source.bearer_opaque_tokens:
            opaque.append(source)
    if len(opaque) > 1:
        # Never guess which provider an opaque token belongs to (RS-14): sending it to another
        # provider's introspection endpoint would hand the token over.
        logger.warning(
            "sso.bearer.several_opaque_sources sources=%s", ",".join(sorted(s.slug for s in opaque))
        )
    return SourceMap(by_issuer, by_pk, opaque[0] if len(opaque) == 1 else None, time.monotonic())


def current() -> SourceMap:
    """Return the current snapshot, rebuilding it when invalidated or too old."""
    global _current, _stale
    snapshot = _current
    if _stale or time.monotonic() - snapshot.loaded_at > app_settings.SOURCE_CACHE_SECONDS:
        with _lock:
            if _stale or time.monotonic() - _current.loaded_at > app_settings.SOURCE_CACHE_SECONDS:
                _stale = False
                try:
                    _current = _load(_current)
                except BaseException:
                    _stale = True
                    raise
            snapshot = _current
    return snapshot


def invalidate(*args: Any, **kwargs: Any) -> None:
    """Rebuild the map at its next use (a signal receiver: any arguments are ignored)."""
    global _stale
    _stale = True


def clear() -> None:
    """Forget everything, including the objects kept for unchanged sources (tests)."""
    global _current, _stale
    with _lock:
        _current, _stale = SourceMap(), True
