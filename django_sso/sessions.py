"""The Django sessions a sign-in opened: recorded at sign-in, ended from anywhere.

Back-channel logout arrives without the browser, so ending "every session of this person" needs
a server-side record of which session keys a sign-in created (RP-CASES decision 9). Sessions
are ended through the session engine's own ``SessionStore(key).delete()``, which works for the
database, cache and cached_db engines on every worker; signed-cookie sessions live in the
browser and cannot be ended from here (``django_sso.W002`` says so).

The browser's own session holds ``SESSION_KEY``: which identity and record it belongs to, and
for re-validated sources until when its access token is good (read by
:mod:`django_sso.session_middleware`).

A record goes when its session is signed out, ended here, or replaced by a new sign-in in the
same browser. Sessions that simply expire leave theirs behind until ``manage.py
sso_clearsessions`` (run it where you run Django's ``clearsessions``) or the person's next
back-channel logout; a stale record costs storage only.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from django_sso.app_settings import app_settings
from django_sso.models import SSOSession, TokenSet

if TYPE_CHECKING:
    from django.http import HttpRequest

    from django_sso.models import Identity

SESSION_KEY = "_django_sso_session"
SIGNED_COOKIES = "django.contrib.sessions.backends.signed_cookies"
#: The scope that asks for tokens that outlive the sign-in (OIDC Core 11).
OFFLINE_ACCESS = "offline_access"


def _session_store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore


def record(request: HttpRequest, identity: Identity, claims: dict[str, Any], token: dict[str, Any]) -> None:
    """Remember the session ``login()`` just opened for ``identity`` (call after ``login()``).

    Keeps the provider's ``sid`` for back-channel logout by session and the ID token for
    ``id_token_hint`` at sign-out. One INSERT; nothing else is queried.
    """
    source = identity.source
    state: dict[str, Any] = {"identity": identity.pk}
    if source.revalidate_session:
        state["revalidate"] = True
        state["valid_until"] = token["expires_at"] - app_settings.REFRESH_MARGIN
    session_key = request.session.session_key
    if session_key and settings.SESSION_ENGINE != SIGNED_COOKIES:
        sid = claims.get("sid")
        id_token = token.get("id_token")
        state["record"] = SSOSession.objects.create(
            identity=identity,
            session_key=session_key,
            sid=sid if isinstance(sid, str) and len(sid) <= 255 else "",
            id_token=id_token if isinstance(id_token, str) and source.is_oidc else "",
        ).pk
    request.session[SESSION_KEY] = state


def current(request: HttpRequest) -> SSOSession | None:
    """Return the record of the request's session, with its identity and source, or None."""
    state = request.session.get(SESSION_KEY) or {}
    if not state.get("record"):
        return None
    return SSOSession.objects.select_related("identity__source").filter(pk=state["record"]).first()


def end(records: Iterable[SSOSession]) -> int:
    """End the Django sessions of ``records`` on every worker and forget them; return how many.

    Tokens of identities left without any session are deleted too, unless they were granted
    ``offline_access`` (RP-CASES LGO-08).
    """
    records = list(records)
    store = _session_store()
    for item in records:
        store(session_key=item.session_key).delete()
    SSOSession.objects.filter(pk__in=[item.pk for item in records]).delete()
    _forget_tokens({item.identity_id for item in records})
    return len(records)


def exists(record: SSOSession) -> bool:
    """Return whether the Django session of ``record`` still exists."""
    return _session_store()().exists(record.session_key)


def clear_stale() -> int:
    """Delete the records of sessions that no longer exist (expired); return how many.

    Tokens of identities left without a session go too, unless granted ``offline_access``.
    """
    records = SSOSession.objects.only("pk", "identity_id", "session_key").iterator()
    stale = [item for item in records if not exists(item)]
    for start in range(0, len(stale), 500):
        SSOSession.objects.filter(pk__in=[item.pk for item in stale[start : start + 500]]).delete()
    _forget_tokens({item.identity_id for item in stale})
    return len(stale)


def _forget_tokens(identity_ids: set[int]) -> None:
    orphaned = (
        TokenSet.objects.filter(identity_id__in=identity_ids)
        .exclude(identity__sso_sessions__isnull=False)
        .only("pk", "scope")
    )
    doomed = [t.pk for t in orphaned if OFFLINE_ACCESS not in t.scope_list]
    if doomed:
        TokenSet.objects.filter(pk__in=doomed).delete()


def forget(request: HttpRequest) -> None:
    """The request's session is ending here: drop its record, and maybe its identity's tokens.

    Called for a local sign-out (``auth.logout``) and before a new sign-in replaces the session.
    """
    session = getattr(request, "session", None)
    state = session.get(SESSION_KEY) if session is not None else None
    if state and state.get("record"):
        SSOSession.objects.filter(pk=state["record"]).delete()
        _forget_tokens({state["identity"]})


@receiver(user_logged_out, dispatch_uid="django_sso.sessions.forget_logged_out")
def _forget_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    forget(request)
