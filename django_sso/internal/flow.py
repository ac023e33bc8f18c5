"""Sign-ins in progress, kept server-side in the browser's session, single use.

Each flow is stored under its ``state`` in the session, so a state from another browser is never
found (AZR-01/02), several tabs do not clobber each other, and taking a flow deletes it whatever
happens next. Values carry at least 256 bits from :mod:`secrets` (AZQ-03).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django_sso.app_settings import app_settings
from django_sso.exceptions import CallbackError, SessionExpired

if TYPE_CHECKING:
    from django.http import HttpRequest

SESSION_KEY = "_django_sso_flows"


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


def save(request: HttpRequest, flow: Flow) -> None:
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


def take(request: HttpRequest, state: str | None) -> Flow:
    """Remove and return the flow this ``state`` names in this session.

    Raise :class:`SessionExpired` when the session holds no such flow (missing, unknown, from
    another browser, already used, or expired). The comparison is constant-time.
    """
    if not state:
        raise CallbackError("sso.state.missing")
    flows: dict[str, dict[str, Any]] = request.session.get(SESSION_KEY, {})
    match = None
    for candidate in list(flows):
        if hmac.compare_digest(candidate.encode(), state.encode()):
            match = candidate
    if match is None:
        raise SessionExpired("sso.state.unknown")
    record = flows.pop(match)
    # Single use (RFC 9700 4.2.4, AZR-02): a success replaces the session, the error funnel
    # (views.SSOErrorMixin) saves it even on a 5xx, when SessionMiddleware would not.
    request.session[SESSION_KEY] = flows
    flow = Flow(**record)
    if flow.expired:
        raise SessionExpired("sso.state.expired")
    return flow
