"""A bearer token's scopes as Django permissions: the role mapping's prefix rules, without a query per token.

The names are resolved exactly as at sign-in (:func:`django_sso.roles.permission_names` and
:func:`~django_sso.roles.resolve_permissions`: the source's ``permission_prefix`` and
``permission_app_labels``; a bare codename only when one app has it). The result for a set of
scopes is remembered per source configuration for ``PERMISSION_CACHE_SECONDS``, so tokens that
carry the same scopes cost no query after the first; a permission created meanwhile (a
migration) counts after at most that long.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from django_sso import roles

if TYPE_CHECKING:
    from django_sso.models import Source

PERMISSION_CACHE_SECONDS = 300
_MAX_ENTRIES = 4096
_resolved: dict[tuple[str, frozenset[str]], tuple[float, frozenset[str]]] = {}
_lock = threading.Lock()


def permissions_for(source: Source, scopes: frozenset[str]) -> frozenset[str]:
    """Return the ``app_label.codename`` permissions the scopes give through the source's prefix."""
    names = roles.permission_names(source, scopes)
    if not names:
        return frozenset()
    key = (source.cache_key("scope_permissions"), scopes)
    now = time.monotonic()
    found = _resolved.get(key)
    if found is not None and found[0] > now:
        return found[1]
    permissions = frozenset(
        f"{p.content_type.app_label}.{p.codename}"
        for p in roles.resolve_permissions(names, source.permission_app_label_list, source=source)
    )
    with _lock:
        if len(_resolved) >= _MAX_ENTRIES:
            _resolved.clear()
        _resolved[key] = (now + PERMISSION_CACHE_SECONDS, permissions)
    return permissions


def clear(*args: object, **kwargs: object) -> None:
    """Forget every resolution (a signal receiver too: any arguments are ignored)."""
    with _lock:
        _resolved.clear()
