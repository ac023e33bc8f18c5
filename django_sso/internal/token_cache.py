"""Bearer tokens already checked, by the SHA-256 of the token: a repeated token costs a hash and a lookup.

A bounded LRU in process memory (``BEARER_CACHE_SIZE`` entries). An entry is used only before
its expiry (the token's ``exp``, or the opaque-token ceiling) and only while the source it was
checked for is unchanged: the caller passes the source object of the current source map and the
source's key generation (``jwks.generation``), so a changed source, a removed source and a new key
set all make old entries unusable. The token itself is never stored.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django_sso.app_settings import app_settings

#: The generation of an entry whose validity does not depend on a key set (an opaque token).
NO_KEYS = -1


@dataclass(frozen=True, slots=True)
class Entry:
    """What was concluded about one token, and under which conditions it still holds."""

    value: Any
    source: Any
    generation: int
    expires_at: float


_entries: OrderedDict[bytes, Entry] = OrderedDict()
_lock = threading.Lock()


def digest(token: str) -> bytes:
    """Return the cache key of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def get(key: bytes, source: Any, generation: int) -> Any:
    """Return the value stored under ``key`` if it is still valid for this source state, else None."""
    entry = _entries.get(key)
    if entry is None:
        return None
    if entry.source is not source or entry.generation != generation or entry.expires_at <= time.time():
        with _lock:
            if _entries.get(key) is entry:
                del _entries[key]
        return None
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
    return entry.value


def peek(key: bytes) -> Entry | None:
    """Return the raw entry under ``key`` (unchecked), for the caller to validate."""
    return _entries.get(key)


def put(key: bytes, value: Any, source: Any, generation: int, expires_at: float) -> None:
    """Remember ``value`` for the token whose digest is ``key`` until ``expires_at``."""
    if expires_at <= time.time():
        return
    limit = app_settings.BEARER_CACHE_SIZE
    if limit <= 0:
        return
    with _lock:
        _entries[key] = Entry(value, source, generation, expires_at)
        _entries.move_to_end(key)
        while len(_entries) > limit:
            _entries.popitem(last=False)


def size() -> int:
    """Return the number of entries held."""
    return len(_entries)


def clear(*args: Any, **kwargs: Any) -> None:
    """Forget every entry (a signal receiver too: any arguments are ignored)."""
    with _lock:
        _entries.clear()
