"""The adapter: one class, named by ``DJANGO_SSO_ADAPTER``, for everything that steers the flow.

Subclass :class:`DefaultSSOAdapter` and override what you need; signals only notify.
"""

from __future__ import annotations

import re
import socket
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from django_sso.app_settings import app_settings

if TYPE_CHECKING:
    import requests
    from django.contrib.auth.models import AbstractBaseUser
    from django.http import HttpRequest

    from django_sso.models import Source
    from django_sso.roles import Roles

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")
#: Claims that describe one token rather than the person; not kept on the Identity.
VOLATILE_CLAIMS = frozenset(
    {
        "iat",
        "exp",
        "nbf",
        "nonce",
        "at_hash",
        "c_hash",
        "auth_time",
        "jti",
        "azp",
        "aud",
        "sid",
        "s_hash",
    }
)


class DefaultSSOAdapter:
    """Documented hooks with safe defaults."""

    def configure_http_session(self, session: requests.Session) -> None:
        """Adjust every outbound session (proxies, a CA bundle, a test transport)."""

    def resolve_host(self, host: str, port: int) -> list[str]:
        """Return the addresses ``host`` resolves to, for the private-address check (CFG-03)."""
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        return [str(info[4][0]) for info in infos]

    def is_sign_in_allowed(self, request: HttpRequest | None, source: Source, claims: dict[str, Any]) -> bool:
        """Return False to refuse a sign-in the provider vouched for (403 page)."""
        return True

    def stored_claims(self, source: Source, claims: dict[str, Any]) -> dict[str, Any]:
        """Return the claims to keep on the Identity: the person, not the token."""
        return {k: v for k, v in claims.items() if k not in VOLATILE_CLAIMS}

    def user_fields(self, source: Source, claims: dict[str, Any]) -> dict[str, Any]:
        """Map claims to user model fields, set at creation and refreshed at every sign-in."""
        fields: dict[str, Any] = {}
        email = claims.get("email")
        if isinstance(email, str):
            fields["email"] = email[:254]
        given, family = claims.get("given_name"), claims.get("family_name")
        name = claims.get("name")
        if isinstance(given, str) or isinstance(family, str):
            fields["first_name"] = (given or "")[:150] if isinstance(given, str) else ""
            fields["last_name"] = (family or "")[:150] if isinstance(family, str) else ""
        elif isinstance(name, str) and name.strip():
            first, _, last = name.strip().partition(" ")
            fields["first_name"], fields["last_name"] = first[:150], last[:150]
        return fields

    def username_base(self, source: Source, claims: dict[str, Any]) -> str:
        """Return the preferred username for a new user (collisions get a numeric suffix)."""
        for claim in ("preferred_username", "email", "nickname", "sub"):
            value = claims.get(claim)
            if isinstance(value, str) and value.strip():
                cleaned = _USERNAME_UNSAFE.sub("", value.strip())[:140]
                if cleaned:
                    return cleaned
        return f"{source.slug}-user"

    def map_roles(
        self,
        request: HttpRequest | None,
        source: Source,
        claims: dict[str, Any],
        token: dict[str, Any],
        roles: Roles,
    ) -> Roles:
        """Return the roles this sign-in gives: those the source's mapping found, or changed ones.

        ``roles`` (a :class:`django_sso.roles.Roles`: ``permissions`` and ``groups`` as sets of
        model instances, ``is_staff``, ``is_superuser``) is what the source's configuration
        maps the provider's values to; ``claims`` are the validated claims, ``token`` the token
        response. Whatever is returned is applied with the usual sync semantics; superuser
        status still needs ``DJANGO_SSO_ALLOW_SUPERUSER_MAPPING``.
        """
        return roles

    def is_local_email_verified(self, user: AbstractBaseUser) -> bool:
        """Return whether the local account's own e-mail is known to be verified.

        When an SSO identity is linked by e-mail into an account whose address was never
        verified, its password is made unusable (ACC-05: the address may have been squatted).
        The default trusts the local address; sites with e-mail verification override this.
        """
        return True


@lru_cache(maxsize=4)
def _adapter_class(path: str) -> type[DefaultSSOAdapter]:
    return import_string(path)


def get_adapter() -> DefaultSSOAdapter:
    """Return an instance of the configured adapter."""
    return _adapter_class(app_settings.ADAPTER)()
