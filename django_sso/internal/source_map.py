"""The sources trusted for bearer tokens, by issuer: a view over ``internal/source_cache.py``.

A bearer token names its issuer; finding the source for it must cost no query per request. This
map is rebuilt from the in-process source cache whenever that reloads (every
``SOURCE_CACHE_SECONDS``, and at once after a save or delete in this process), keeping only
enabled sources with API audiences. An unchanged source keeps its Python object across rebuilds,
so the tokens remembered for it (``internal/token_cache.py``, which compares objects) stay valid;
those of a changed or removed source do not.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from django_sso.internal import source_cache
from django_sso.models import Source

logger = logging.getLogger("django_sso")


@dataclass(frozen=True)
class SourceMap:
    """One snapshot: enabled sources with API audiences, by issuer and by primary key."""

    by_issuer: dict[str, Source] = field(default_factory=dict)
    by_pk: dict[int, Source] = field(default_factory=dict)
    #: The one source that checks opaque tokens (they name no issuer); None when none or several.
    opaque: Source | None = None
    loaded_at: float | None = None


_lock = threading.Lock()
_current = SourceMap()


def _fingerprint(source: Source) -> tuple[Any, ...]:
    return tuple(getattr(source, f.attname) for f in Source._meta.concrete_fields)


def _build(loaded_at: float, sources: dict[str, Source], previous: SourceMap) -> SourceMap:
    by_issuer: dict[str, Source] = {}
    by_pk: dict[int, Source] = {}
    opaque: list[Source] = []
    for loaded in sources.values():
        if not loaded.accepts_bearer_tokens:
            continue
        kept = previous.by_pk.get(loaded.pk)
        source = kept if kept is not None and _fingerprint(kept) == _fingerprint(loaded) else loaded
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
    return SourceMap(by_issuer, by_pk, opaque[0] if len(opaque) == 1 else None, loaded_at)


def current() -> SourceMap:
    """Return the map for the sources loaded now (no query unless the source cache reloads)."""
    global _current
    loaded_at, sources = source_cache.snapshot()
    snapshot = _current
    if snapshot.loaded_at != loaded_at:
        with _lock:
            if _current.loaded_at != loaded_at:
                _current = _build(loaded_at, sources, _current)
            snapshot = _current
    return snapshot


def clear() -> None:
    """Forget the map, including the objects kept for unchanged sources (tests)."""
    global _current
    with _lock:
        _current = SourceMap()
