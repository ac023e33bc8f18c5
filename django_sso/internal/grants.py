"""Read a provider's grants and groups for role mapping: claim paths, the token response's
``scope``, and an access token only when it is a JWT that verifies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django_sso.exceptions import SSOError
from django_sso.internal import id_token, jws

if TYPE_CHECKING:
    from django_sso.models import Source

logger = logging.getLogger("django_sso")

#: Returned by :func:`lookup` when a claim path leads nowhere.
MISSING: Any = object()
#: Values read from one claim at most; the rest is dropped (and logged): grants only shrink.
MAX_VALUES = 500
ACCESS_TOKEN_KIND = "sso.access_token"


@dataclass
class ProviderValues:
    """What a sign-in's provider sent for the role mapping: grants (scopes, roles) and groups."""

    grants: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


def lookup(data: Any, path: str) -> Any:
    """Return the value at the dotted claim ``path`` in ``data``, or :data:`MISSING`.

    At each level the longest key that begins the remaining path wins, so claim names holding
    dots (``https://example.com/roles``, a Keycloak client ``my.app`` in
    ``resource_access.my.app.roles``) work as typed. No backtracking: the cost is linear.
    """
    node, rest = data, path
    while rest:
        if not isinstance(node, dict):
            return MISSING
        if rest in node:
            return node[rest]
        segments = rest.split(".")
        for cut in range(len(segments) - 1, 0, -1):
            key = ".".join(segments[:cut])
            if key in node:
                node, rest = node[key], ".".join(segments[cut:])
                break
        else:
            return MISSING
    return node


def as_values(found: Any, *, source: Source | None = None, path: str = "") -> list[str]:
    """Return the values of a claim: a space-delimited string, or the strings of a list.

    Anything else (a number, an object, a boolean, a list's non-string items) gives nothing: a
    value is never coerced with ``str()``. At most :data:`MAX_VALUES`, duplicates dropped.
    """
    if isinstance(found, str):
        # RFC 6749 3.3: scope tokens are separated by a space (%x20) only, so a value holding a
        # tab or a comma stays one token and matches nothing (RS-08).
        values = [item for item in found.split(" ") if item]
    elif isinstance(found, list):
        values = [item for item in found if isinstance(item, str) and item]
    else:
        return []
    values = list(dict.fromkeys(values))
    if len(values) > MAX_VALUES:
        logger.warning(
            "sso.roles.too_many_values source=%s claim=%r count=%d kept=%d",
            source.slug if source else "-",
            path,
            len(values),
            MAX_VALUES,
        )
        values = values[:MAX_VALUES]
    return values


def access_token_claims(source: Source, token: dict[str, Any]) -> dict[str, Any]:
    """Return the access token's claims when it is a JWT that verifies; otherwise ``{}``.

    Read only when the source names the access token's audience. Verified like an ID token,
    with the source's keys and algorithm allow-list, exact ``iss``, ``aud`` = that audience and
    ``exp``: an unverified JWT is never trusted. A failure is logged and grants nothing.
    """
    raw = token.get("access_token")
    if not source.access_token_audience or not isinstance(raw, str) or raw.count(".") != 2:
        return {}
    try:
        _header, claims = jws.decode(
            source,
            raw,
            kind=ACCESS_TOKEN_KIND,
            audience=source.access_token_audience,
            issuer=source.issuer,
            algorithms=id_token.allowed_algorithms(source),
            required=("exp", "iss", "aud"),
        )
    except SSOError as exc:
        logger.warning("sso.roles.access_token_refused source=%s code=%s", source.slug, exc.code)
        return {}
    return claims


class _Reader:
    """Claim paths are looked up in the ID token and UserInfo claims, then the access token."""

    def __init__(self, source: Source, claims: dict[str, Any], token: dict[str, Any]) -> None:
        self.source, self.claims, self.token = source, claims, token
        self._access: dict[str, Any] | None = None

    def read(self, path: str) -> list[str]:
        found = lookup(self.claims, path)
        if found is MISSING and self.source.access_token_audience:
            if self._access is None:
                self._access = access_token_claims(self.source, self.token)
            found = lookup(self._access, path)
        return as_values(found, source=self.source, path=path)

    def granted_scope(self) -> list[str]:
        # RFC 6749 5.1 lets a provider omit ``scope`` when it granted what was asked; that is
        # not taken as a grant of every permission scope asked for.
        if self.token.get("scope_sent") is False:
            return []
        return as_values(self.token.get("scope"), source=self.source, path="scope")


def read_values(source: Source, claims: dict[str, Any], token: dict[str, Any]) -> ProviderValues:
    """Return the grants and groups the provider sent, from where the source says to read them.

    Grants: the claim path ``permission_claim``, or the token response's ``scope`` when it is
    blank. Groups: the claim path ``groups_claim`` (blank: none).
    """
    reader = _Reader(source, claims, token)
    grants = reader.read(source.permission_claim) if source.permission_claim else reader.granted_scope()
    groups = reader.read(source.groups_claim) if source.groups_claim else []
    return ProviderValues(grants=grants, groups=groups)
