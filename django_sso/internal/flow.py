"""Sign-ins in progress, kept server-side, bound to the browser that started them, single use.

Two stores, chosen by ``DJANGO_SSO_FLOW_STORE``:

* ``"session"`` (the default): each flow is stored under its ``state`` in the browser's session.
* ``"cache"``: each flow is its own entry in Django's cache (``DJANGO_SSO_CACHE_ALIAS``), keyed
  by a random value in the ``django_sso_flow`` cookie *and* the state, so an anonymous sign-in
  creates no session before login.

Either way a state from another browser is never found (AZR-01/02), several tabs do not clobber
each other, and taking a flow deletes it whatever happens next. Values carry at least 256 bits
from :mod:`secrets` (AZQ-03).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.cache import caches

from django_sso.app_settings import app_settings
from django_sso.exceptions import CallbackError, SessionExpired

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

SESSION_KEY = "_django_sso_flows"
#: The cache store's browser-binding cookie.
COOKIE_NAME = "django_sso_flow"
CACHE_PREFIX = "django_sso:flow"
STORES = ("session", "cache")
# What secrets.token_urlsafe(32) makes: 256 bits. Anything else in the cookie is not ours.
_BINDING = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Where save() leaves the binding for bind_response() on the same request.
_REQUEST_ATTR = "_django_sso_flow_binding"


@dataclass
class Flow:
    """What the callback needs to finish one sign-in; never sent to the browser but ``state``."""

    source_id: int
    source_slug: str
    issuer: str
    redirect_uri: str
    next_url: str
    state: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # RFC 7636 4.1: 43-128 characters; 64 random bytes give 86.
    code_verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    purpose: str = "login"
    user_id: int | None = None
    max_age: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def expired(self) -> bool:
        return time.time() - self.created_at > app_settings.FLOW_TIMEOUT


def _uses_cache() -> bool:
    return app_settings.FLOW_STORE == "cache"


def save(request: HttpRequest, flow: Flow) -> None:
    """Store ``flow`` for this browser; then pass the response to :func:`bind_response`."""
    if _uses_cache():
        _cache_save(request, flow)
    else:
        _session_save(request, flow)


def bind_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Set the cookie that binds the flow :func:`save` stored to this browser; return ``response``.

    Nothing to do for the session store: the session cookie is the binding.
    """
    binding = getattr(request, _REQUEST_ATTR, None)
    if binding is not None:
        response.set_cookie(
            COOKIE_NAME,
            binding,
            max_age=app_settings.FLOW_TIMEOUT,
            secure=request.is_secure(),
            httponly=True,
            # Lax: sent on the provider's top-level redirect back (a GET), like the session cookie.
            samesite="Lax",
        )
    return response


def unbind_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Drop the binding cookie after a sign-in: the browser's other pending flows are forgotten.

    The session store loses them with the pre-login session (ACC-07); the cache store's entries
    can no longer be found and expire.
    """
    if COOKIE_NAME in request.COOKIES:
        response.delete_cookie(COOKIE_NAME, samesite="Lax")
    return response


def take(request: HttpRequest, state: str | None) -> Flow:
    """Remove and return the flow this ``state`` names for this browser.

    Raise :class:`SessionExpired` when there is no such flow (missing, unknown, from another
    browser, already used, or expired).
    """
    if not state:
        raise CallbackError("sso.state.missing")
    record = _cache_take(request, state) if _uses_cache() else _session_take(request, state)
    if record is None:
        raise SessionExpired("sso.state.unknown")
    flow = Flow(**record)
    if flow.expired:
        raise SessionExpired("sso.state.expired")
    return flow


# --------------------------------------------------------------------------- session store


def _session_save(request: HttpRequest, flow: Flow) -> None:
    """Store ``flow`` in the session, dropping expired flows and the oldest beyond the limit."""
    flows = {
        state: record
        for state, record in request.session.get(SESSION_KEY, {}).items()
        if not Flow(**record).expired
    }
    flows[flow.state] = asdict(flow)
    limit = app_settings.MAX_FLOWS_PER_SESSION
    if len(flows) > limit:
        newest = sorted(flows.items(), key=lambda item: item[1]["created_at"])[-limit:]
        flows = dict(newest)
    request.session[SESSION_KEY] = flows


def _session_take(request: HttpRequest, state: str) -> dict[str, Any] | None:
    flows: dict[str, dict[str, Any]] = request.session.get(SESSION_KEY, {})
    match = None
    for candidate in list(flows):
        # Constant time: the session may hold several states.
        if hmac.compare_digest(candidate.encode(), state.encode()):
            match = candidate
    if match is None:
        return None
    record = flows.pop(match)
    # Single use (RFC 9700 4.2.4, AZR-02): a success replaces the session, the error funnel
    # (views.SSOErrorMixin) saves it even on a 5xx, when SessionMiddleware would not.
    request.session[SESSION_KEY] = flows
    return record


# --------------------------------------------------------------------------- cache store


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _cache_key(binding: str, state: str) -> str:
    # Hashed: the cache never holds the cookie's value, and a key has a fixed length and alphabet
    # whatever the provider's OAuth 1 token looks like (memcached allows 250 characters).
    return f"{CACHE_PREFIX}:{_digest(binding)}:{_digest(state)}"


def _cache_save(request: HttpRequest, flow: Flow) -> None:
    # One binding per browser, kept while it has flows pending, so several tabs can sign in.
    binding = request.COOKIES.get(COOKIE_NAME, "")
    if not _BINDING.match(binding):
        binding = secrets.token_urlsafe(32)
    timeout = app_settings.FLOW_TIMEOUT
    caches[app_settings.CACHE_ALIAS].set(_cache_key(binding, flow.state), asdict(flow), timeout)
    setattr(request, _REQUEST_ATTR, binding)


def _cache_take(request: HttpRequest, state: str) -> dict[str, Any] | None:
    binding = request.COOKIES.get(COOKIE_NAME, "")
    if not _BINDING.match(binding):
        return None
    # Found by the digests of both values: a state from another browser names another key.
    key = _cache_key(binding, state)
    cache = caches[app_settings.CACHE_ALIAS]
    record = cache.get(key)
    # Single use (RFC 9700 4.2.4, AZR-02): only the request whose delete removed the entry may
    # use it, so two concurrent callbacks with one state cannot both go on.
    if record is None or not cache.delete(key):
        return None
    return record
