"""Logout Token validation, OpenID Connect Back-Channel Logout 1.0 section 2.6.

The token is verified with the keys of the source whose endpoint received it, against that
source's issuer and client id only (LGO-05, LGO-09), and may be used once: its ``jti`` is
remembered in Django's cache until the token could no longer be accepted anyway (LGO-06).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import caches

from django_sso.app_settings import app_settings
from django_sso.exceptions import TokenValidationError
from django_sso.internal import id_token, jws

if TYPE_CHECKING:
    from django_sso.models import Source

KIND = "sso.logout_token"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: ``typ`` values accepted: the one BCL 2.4 recommends, the generic one, or none (LGO-07).
ACCEPTED_TYPES = frozenset({"", "jwt", "logout+jwt"})
MAX_ID_LENGTH = 255


@dataclass(frozen=True)
class LogoutRequest:
    """Whom a valid logout token signs out: a subject, a provider session, or both."""

    sub: str | None
    sid: str | None


def validate(source: Source, token: str, now: float | None = None) -> LogoutRequest:
    """Return whom a logout token for ``source`` names, or raise :class:`TokenValidationError`.

    BCL 2.6: signature with the source's keys and allowed algorithms (never ``none``; HMAC only
    when configured), ``iss`` exactly, ``aud`` the client id, ``iat``/``exp`` as numbers within
    leeway, the back-channel event in ``events``, ``sub`` and/or ``sid``, no ``nonce``, a ``jti``
    not seen before. The ``jti`` is recorded only once everything else passed.
    """
    header, claims = jws.decode(
        source,
        token,
        kind=KIND,
        audience=source.client_id,
        issuer=source.issuer,
        algorithms=id_token.allowed_algorithms(source),
        required=("iss", "aud", "iat", "exp", "jti", "events"),
    )
    if jws.typ_of(header, KIND) not in ACCEPTED_TYPES:
        raise TokenValidationError(f"{KIND}.wrong_type", "typ is not logout+jwt")
    id_token.check_audience(source, claims, kind=KIND)
    now = time.time() if now is None else now
    leeway = app_settings.LEEWAY
    if claims["iat"] < now - leeway - app_settings.LOGOUT_TOKEN_MAX_AGE:
        raise TokenValidationError(f"{KIND}.too_old")
    _check_events(claims.get("events"))
    # BCL 2.4: a nonce is prohibited, which also keeps ID tokens out (LGO-07).
    if "nonce" in claims:
        raise TokenValidationError(f"{KIND}.nonce_present")
    request = LogoutRequest(sub=_optional_id(claims, "sub"), sid=_optional_id(claims, "sid"))
    if request.sub is None and request.sid is None:
        raise TokenValidationError(f"{KIND}.no_sub_or_sid")
    jti = _optional_id(claims, "jti")
    if jti is None:
        raise TokenValidationError(f"{KIND}.missing_claim", "jti")
    valid_until = min(claims["exp"], claims["iat"] + app_settings.LOGOUT_TOKEN_MAX_AGE) + leeway
    _remember_jti(source, jti, ttl=valid_until - now)
    return request


def _check_events(events: Any) -> None:
    # BCL 2.4: a JSON object with the back-channel member, whose value is a JSON object.
    if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events:
        raise TokenValidationError(f"{KIND}.no_event")
    if not isinstance(events[BACKCHANNEL_EVENT], dict):
        raise TokenValidationError(f"{KIND}.bad_event", "the event value is not an object")


def _optional_id(claims: dict[str, Any], name: str) -> str | None:
    if name not in claims:
        return None
    value = claims[name]
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise TokenValidationError(f"{KIND}.bad_{name}", f"{name} is not a short non-empty string")
    return value


def _remember_jti(source: Source, jti: str, ttl: float) -> None:
    """Record ``jti`` for this source until the token expires; a second use is a replay."""
    digest = hashlib.sha256(jti.encode()).hexdigest()
    key = f"django_sso:logout_jti:{source.pk}:{digest}"
    if not caches[app_settings.CACHE_ALIAS].add(key, 1, timeout=max(1, int(ttl) + 1)):
        raise TokenValidationError(f"{KIND}.replayed")
