"""Tokens kept for an identity: stored at sign-in, handed out valid, refreshed once at a time.

Only sources with ``keep_refresh_token`` keep tokens. :func:`get_access_token` is the public
entry point::

    from django_sso.tokens import get_access_token

    token = get_access_token(request.user, source)  # ReauthenticationRequired: sign in again

A token that is still valid costs one query and no provider call. One about to expire is
refreshed under a row lock (``SELECT ... FOR UPDATE``), so concurrent requests on any number of
workers make one refresh; the others wait and read its result. That matters with refresh-token
rotation: a second use of the old refresh token is reuse, and providers then revoke the grant
(RFC 9700 4.14.2). SQLite has no row locks; there, concurrent refreshes are not serialised.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from django_sso import sessions
from django_sso.app_settings import app_settings
from django_sso.exceptions import InvalidGrant, ReauthenticationRequired, TokenValidationError
from django_sso.internal import id_token, oauth2
from django_sso.models import Identity, TokenSet

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from django_sso.models import Source

logger = logging.getLogger("django_sso")


def store(identity: Identity, token: dict[str, Any], claims: dict[str, Any]) -> TokenSet:
    """Keep the tokens of a sign-in (a normalised token response) for ``identity``, replacing any."""
    source = identity.source
    raw_id_token = token.get("id_token") if source.is_oidc else None
    values = {
        "access_token": token["access_token"],
        "refresh_token": _string(token.get("refresh_token")),
        "id_token": _string(raw_id_token),
        "id_claims": id_token.kept_claims(claims) if source.is_oidc else {},
        "scope": " ".join(token["scope"]),
        "expires_at": _datetime(token["expires_at"]),
    }
    token_set, _ = TokenSet.objects.update_or_create(identity=identity, defaults=values)
    return token_set


def get_access_token(user: AbstractBaseUser, source: Source) -> str:
    """Return a valid access token of ``user`` at ``source``, refreshing it when about to expire.

    Raise :class:`~django_sso.exceptions.ReauthenticationRequired` when there is none to give:
    the user never signed in there with tokens kept, the provider refused the refresh token
    (revoked; the tokens are deleted), or a refreshed ID token did not match (RT-01; the tokens
    are deleted and the identity's sessions ended). Raise
    :class:`~django_sso.exceptions.ProviderError` when the provider could not be asked; the
    tokens are kept for a later try.
    """
    identity = Identity.objects.filter(user=user, source=source).order_by("-updated_at").first()
    if identity is None:
        raise ReauthenticationRequired("sso.tokens.no_identity")
    return valid_token_set(identity).access_token


def valid_token_set(identity: Identity) -> TokenSet:
    """Return the identity's tokens with an access token valid beyond the refresh margin.

    Raise as :func:`get_access_token` does.
    """
    token_set = TokenSet.objects.filter(identity=identity).first()
    if token_set is None:
        raise ReauthenticationRequired("sso.tokens.none")
    if not _expiring(token_set):
        return token_set
    return _refresh(identity)


def _refresh(identity: Identity) -> TokenSet:
    source = identity.source
    end_sessions = False
    with transaction.atomic():
        # The lock serialises refreshes of one token set across workers until this commits.
        token_set = TokenSet.objects.select_for_update().filter(identity=identity).first()
        if token_set is None:
            failure = ReauthenticationRequired("sso.tokens.none")
        elif not _expiring(token_set):
            return token_set  # refreshed by another request while this one waited for the lock
        elif not token_set.refresh_token:
            failure = ReauthenticationRequired("sso.refresh.no_refresh_token")
        else:
            try:
                answer = oauth2.refresh(source, token_set.refresh_token, token_set.scope_list)
                claims = _check_id_token(source, token_set, answer)
            except InvalidGrant:
                # RT-02: revoked, expired or reused; never try the same refresh token again.
                token_set.delete()
                failure = ReauthenticationRequired("sso.refresh.invalid_grant")
            except TokenValidationError as exc:
                # RT-01: nothing from this answer is kept, nor what came before it.
                token_set.delete()
                failure = ReauthenticationRequired(exc.code, exc.detail)
                end_sessions = True
            else:
                _apply(token_set, answer, claims)
                return token_set
    logger.warning("sso.refresh.failed code=%s source=%s identity=%s", failure.code, source.slug, identity.pk)
    if end_sessions:
        sessions.end(identity.sso_sessions.all())
    raise failure


def _check_id_token(source: Source, token_set: TokenSet, answer: dict[str, Any]) -> dict[str, Any] | None:
    raw = answer.get("id_token")
    if not source.is_oidc or raw is None:
        return None
    if not isinstance(raw, str):
        raise TokenValidationError("sso.id_token.malformed", "id_token is not a string")
    return id_token.validate_refreshed(
        source, raw, original=token_set.id_claims, access_token=answer["access_token"]
    )


def _apply(token_set: TokenSet, answer: dict[str, Any], claims: dict[str, Any] | None) -> None:
    token_set.access_token = answer["access_token"]
    # RFC 6749 6: without a new refresh token the old one stays valid; with one, it replaces it.
    token_set.refresh_token = _string(answer.get("refresh_token")) or token_set.refresh_token
    if claims is not None:
        token_set.id_token = answer["id_token"]
    token_set.scope = " ".join(answer["scope"])
    token_set.expires_at = _datetime(answer["expires_at"])
    token_set.save()


def _expiring(token_set: TokenSet) -> bool:
    margin = datetime.timedelta(seconds=app_settings.REFRESH_MARGIN)
    return token_set.expires_at - margin <= timezone.now()


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _datetime(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
