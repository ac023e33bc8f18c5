"""Typed, live-read settings (``DJANGO_SSO_*``).

Every value is read on access, so ``override_settings`` and pytest-django's ``settings`` fixture
work without reload code. Validation lives in :mod:`django_sso.checks`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.functional import empty

#: Upper bound on the clock-skew leeway an operator may configure (RP-CASES decision 5).
MAX_LEEWAY_SECONDS = 300


class AppSettings:
    """Accessors for every ``DJANGO_SSO_*`` setting, with its default."""

    def _setting(self, name: str, default: Any) -> Any:
        # Read from the settings object LazySettings currently wraps: just as live (override_settings
        # swaps that object), but an unset name costs no AttributeError raised through LazySettings'
        # __getattr__, which matters on per-request paths (bearer tokens read several settings).
        wrapped = settings._wrapped
        if wrapped is empty:
            return getattr(settings, f"DJANGO_SSO_{name}", default)
        return getattr(wrapped, f"DJANGO_SSO_{name}", default)

    @property
    def ADAPTER(self) -> str:
        """Dotted path of the adapter class that controls the flow."""
        return self._setting("ADAPTER", "django_sso.adapter.DefaultSSOAdapter")

    @property
    def CONNECT_TIMEOUT(self) -> float:
        """Seconds to wait for a provider to accept a connection."""
        return float(self._setting("CONNECT_TIMEOUT", 5))

    @property
    def READ_TIMEOUT(self) -> float:
        """Seconds to wait between bytes of a provider's answer."""
        return float(self._setting("READ_TIMEOUT", 10))

    @property
    def MAX_RESPONSE_BYTES(self) -> int:
        """Largest body accepted from a provider (discovery, token, UserInfo, JWKS)."""
        return int(self._setting("MAX_RESPONSE_BYTES", 1024 * 1024))

    @property
    def MAX_TOKEN_BYTES(self) -> int:
        """Largest JWT accepted, checked before any decoding."""
        return int(self._setting("MAX_TOKEN_BYTES", 16 * 1024))

    @property
    def ALLOWED_LOCAL_HOSTS(self) -> list[str]:
        """Hosts that may be reached over plain http or at loopback/private addresses.

        Empty by default: every provider endpoint must be https on a public address. List
        ``127.0.0.1`` or ``localhost`` here for a provider running on the same machine.
        """
        return list(self._setting("ALLOWED_LOCAL_HOSTS", []))

    @property
    def LEEWAY(self) -> int:
        """Seconds of clock skew tolerated on ``exp``/``nbf``/``iat`` (capped at 300)."""
        return min(int(self._setting("LEEWAY", 60)), MAX_LEEWAY_SECONDS)

    @property
    def ID_TOKEN_MAX_AGE(self) -> int:
        """Seconds an ID token's ``iat`` may lie in the past (beyond the leeway)."""
        return int(self._setting("ID_TOKEN_MAX_AGE", 600))

    @property
    def FLOW_TIMEOUT(self) -> int:
        """Seconds a started sign-in stays valid."""
        return int(self._setting("FLOW_TIMEOUT", 600))

    @property
    def MAX_FLOWS_PER_SESSION(self) -> int:
        """Sign-ins one browser session may have in progress at once (tabs; session store only)."""
        return int(self._setting("MAX_FLOWS_PER_SESSION", 10))

    @property
    def FLOW_STORE(self) -> str:
        """Where sign-ins in progress are kept: ``"session"`` or ``"cache"`` (``CACHE_ALIAS``).

        The cache store binds each flow to the browser with a cookie of its own, so an anonymous
        sign-in creates no session before login; it needs a cache all processes share.
        """
        return self._setting("FLOW_STORE", "session")

    @property
    def LOGIN_ON_GET(self) -> bool:
        """Start the flow on a GET to the login URL (off: a GET shows a confirmation page)."""
        return bool(self._setting("LOGIN_ON_GET", False))

    @property
    def JWKS_REFETCH_COOLDOWN(self) -> int:
        """Seconds between two JWKS fetches of one source caused by unknown ``kid`` values."""
        return int(self._setting("JWKS_REFETCH_COOLDOWN", 30))

    @property
    def JWKS_MAX_AGE(self) -> int:
        """Seconds a fetched JWKS is used before it is fetched again."""
        return int(self._setting("JWKS_MAX_AGE", 24 * 3600))

    @property
    def SOURCE_CACHE_SECONDS(self) -> float:
        """Seconds a process keeps sources in memory; a save in the same process clears it at once."""
        return float(self._setting("SOURCE_CACHE_SECONDS", 5))

    @property
    def CACHE_ALIAS(self) -> str:
        """Django cache that shares key sets across processes."""
        return self._setting("CACHE_ALIAS", "default")

    @property
    def CLIENT_CREDENTIALS_MARGIN(self) -> int:
        """Seconds before its expiry a cached client-credentials token is no longer handed out."""
        return int(self._setting("CLIENT_CREDENTIALS_MARGIN", 60))

    @property
    def ENCRYPTION_KEYS(self) -> list[str]:
        """Keys that encrypt secrets at rest, newest first; older ones still decrypt.

        Empty (the default) derives the keys from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``,
        so rotating Django's secret key the documented way keeps stored secrets readable.
        """
        return list(self._setting("ENCRYPTION_KEYS", []))

    @property
    def DEFAULT_SIGNING_ALGORITHMS(self) -> list[str]:
        """ID token algorithms accepted when a source names none."""
        return list(self._setting("DEFAULT_SIGNING_ALGORITHMS", ["RS256"]))

    @property
    def ALLOW_SUPERUSER_MAPPING(self) -> bool:
        """Let a source's role mapping make users superusers (off: superuser values are ignored).

        A superuser passes every permission check, so a provider-side mistake would hand over the
        whole site; turn this on only for a provider you administer as strictly as the site.
        """
        return bool(self._setting("ALLOW_SUPERUSER_MAPPING", False))

    @property
    def REFRESH_MARGIN(self) -> int:
        """Seconds before its expiry an access token is refreshed."""
        return int(self._setting("REFRESH_MARGIN", 60))

    @property
    def REVALIDATE_RETRY(self) -> int:
        """Seconds a session keeps going unchecked after a refresh failed for want of the provider."""
        return int(self._setting("REVALIDATE_RETRY", 60))

    @property
    def LOGOUT_TOKEN_MAX_AGE(self) -> int:
        """Seconds a back-channel logout token's ``iat`` may lie in the past (beyond the leeway)."""
        return int(self._setting("LOGOUT_TOKEN_MAX_AGE", 600))

    @property
    def BEARER_REALM(self) -> str:
        """The ``realm`` of the ``WWW-Authenticate: Bearer`` challenge (RFC 6750 3)."""
        return self._setting("BEARER_REALM", "api")

    @property
    def BEARER_CACHE_SIZE(self) -> int:
        """Verified bearer tokens each process remembers (least recently used go first)."""
        return int(self._setting("BEARER_CACHE_SIZE", 10_000))

    @property
    def BEARER_OPAQUE_CACHE_SECONDS(self) -> int:
        """Longest time an introspection or UserInfo answer about an opaque token is reused.

        The token's own ``exp``, when the provider tells it, ends the reuse earlier.
        """
        return int(self._setting("BEARER_OPAQUE_CACHE_SECONDS", 300))

    @property
    def LOGIN_REDIRECT_URL(self) -> str:
        """Where to go after sign-in when no safe ``next`` was given."""
        return self._setting("LOGIN_REDIRECT_URL", None) or settings.LOGIN_REDIRECT_URL

    @property
    def LOGOUT_REDIRECT_URL(self) -> str:
        """Where to go after sign-out."""
        return self._setting("LOGOUT_REDIRECT_URL", None) or settings.LOGOUT_REDIRECT_URL or "/"

    @property
    def REDIRECT_URI_BASE(self) -> str | None:
        """Absolute origin (``https://app.example.com``) for callback URLs.

        Set it behind proxies: the callback URL sent to providers is then built from
        configuration, never from the request's ``Host`` header (RFC 9700 4.1.3).
        """
        return self._setting("REDIRECT_URI_BASE", None)


app_settings = AppSettings()
