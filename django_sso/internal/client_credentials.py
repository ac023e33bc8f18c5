"""Client credentials (RFC 6749 4.4): the site's own access token, for calling other APIs.

Tokens are kept in Django's cache (``DJANGO_SSO_CACHE_ALIAS``), so every process shares them,
keyed by the source (and its configuration stamp: a new secret means a new token), the scopes,
the audience and the resource, until ``CLIENT_CREDENTIALS_MARGIN`` seconds before they expire.
They are encrypted there like client secrets at rest: caches are often shared (Redis). In one
process, concurrent callers for one key wait for a single token request.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from typing import TYPE_CHECKING

from django.core.cache import caches

from django_sso.app_settings import app_settings
from django_sso.exceptions import ConfigurationError
from django_sso.internal import crypto, oauth2

if TYPE_CHECKING:
    from django_sso.models import Source

_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def cache_key(source: Source, scopes: list[str], audience: str | None, resource: str | None) -> str:
    """Return the cache key of a token for these parameters at this source."""
    parts = json.dumps([source.client_id, sorted(set(scopes)), audience or "", resource or ""])
    return f"{source.cache_key('client_credentials')}:{hashlib.sha256(parts.encode()).hexdigest()}"


def _margin(lifetime: float) -> float:
    # Never cache a token for less than half its lifetime's worth of margin: a 60 s token with a
    # 60 s margin would never be reused.
    return min(app_settings.CLIENT_CREDENTIALS_MARGIN, lifetime / 2)


def _cached(key: str) -> str | None:
    stored = caches[app_settings.CACHE_ALIAS].get(key)
    if not isinstance(stored, str):
        return None
    try:
        record = json.loads(crypto.decrypt(stored))
    except ValueError:
        return None
    # The cache's own expiry is not trusted to the second (some backends round it up).
    if record["use_until"] <= time.time():
        return None
    return record["access_token"]


def access_token(
    source: Source,
    *,
    scope: str | list[str] | None = None,
    audience: str | None = None,
    resource: str | None = None,
) -> str:
    """Return an access token for the source's own client, from the cache or the provider.

    ``scope`` is a space-separated string or a list; ``audience`` is sent as Auth0 expects it,
    ``resource`` as RFC 8707 defines it. Raise :class:`~django_sso.exceptions.SSOError` when
    the provider refuses or cannot be reached.
    """
    if source.is_oauth1:
        raise ConfigurationError("sso.client_credentials.unsupported", "OAuth 1.0a has no such grant")
    scopes = scope.split() if isinstance(scope, str) else list(scope or [])
    key = cache_key(source, scopes, audience, resource)
    token = _cached(key)
    if token is not None:
        return token
    with _lock(key):
        token = _cached(key)
        if token is not None:
            return token
        data = {"grant_type": "client_credentials"}
        if scopes:
            data["scope"] = " ".join(scopes)
        if audience:
            data["audience"] = audience
        if resource:
            data["resource"] = resource
        now = time.time()
        response = oauth2.token_request(source, data, scopes)
        lifetime = response["expires_at"] - now
        use_until = response["expires_at"] - _margin(lifetime)
        if use_until > now:
            record = {"access_token": response["access_token"], "use_until": use_until}
            timeout = math.ceil(use_until - now)
            caches[app_settings.CACHE_ALIAS].set(key, crypto.encrypt(json.dumps(record)), timeout)
        return response["access_token"]
