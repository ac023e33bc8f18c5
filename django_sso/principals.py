"""Who a bearer token speaks for: a service principal, or a user with the token's permissions.

A client-credentials token has no person behind it. It becomes a :class:`ServicePrincipal`: not
a row of the user table, but it answers what views ask of ``request.user``
(``is_authenticated``, ``has_perm`` ...) from the token's scopes alone. Its ``username`` lives in
its own namespace (``service:<source>:<client>``), never a user's (RS-10).

A person's token gives the user object, loaded from the database, with the token's permissions
laid over it for this request only (:func:`with_token_permissions`): the permission methods are
replaced on that one instance, so ``user.has_perm()``, ``{% if perms.shop.manage_orders %}`` and
DRF's permission classes see the token's grants, while the user stays a real model instance
(``isinstance`` and foreign keys work) and nothing is written to the database. By default the
provider is the authority: the user has exactly the permissions the token's scopes map to, never
a superuser's blanket pass nor the grants stored on the account. With the source's
``bearer_delegation`` on, a permission needs both the token's scope and the user's own grant
(the intersection, RFC 9700 2.3: a token must not let a user exceed their own privileges).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group, Permission
from django.db.models.manager import EmptyManager

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from django_sso.internal.access_token import AccessToken

_NO_DB = "A service principal is not stored in the database."


def _perm_list(perm_list: Any) -> list[str]:
    if not isinstance(perm_list, Iterable) or isinstance(perm_list, str):
        raise ValueError("perm_list must be an iterable of permissions.")
    return list(perm_list)


class ServicePrincipal:
    """A client acting on its own behalf (client credentials): authenticated, not a user row."""

    id = None
    pk = None
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    is_authenticated = True
    is_service = True
    _groups = EmptyManager(Group)
    _user_permissions = EmptyManager(Permission)

    def __init__(self, token: AccessToken) -> None:
        self.token = self.bearer_token = token
        self.source = token.source
        self.client_id = token.client_id or token.subject or ""
        self.username = f"service:{token.source.slug}:{self.client_id}"

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"<ServicePrincipal {self.username}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServicePrincipal) and other.username == self.username

    def __hash__(self) -> int:
        return hash(self.username)

    @property
    def scopes(self) -> frozenset[str]:
        return self.token.scopes

    @property
    def groups(self) -> EmptyManager:
        return self._groups

    @property
    def user_permissions(self) -> EmptyManager:
        return self._user_permissions

    def get_username(self) -> str:
        return self.username

    def get_user_permissions(self, obj: Any = None) -> set[str]:
        return set(self.token.permissions)

    def get_group_permissions(self, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return set(self.token.permissions)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return perm in self.token.permissions

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        return all(perm in self.token.permissions for perm in _perm_list(perm_list))

    def has_module_perms(self, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in self.token.permissions)

    async def ahas_perm(self, perm: str, obj: Any = None) -> bool:
        return self.has_perm(perm, obj)

    async def ahas_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        return self.has_perms(perm_list, obj)

    async def ahas_module_perms(self, app_label: str) -> bool:
        return self.has_module_perms(app_label)

    async def aget_all_permissions(self, obj: Any = None) -> set[str]:
        return self.get_all_permissions(obj)

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(_NO_DB)

    def delete(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(_NO_DB)

    def set_password(self, raw_password: str | None) -> None:
        raise NotImplementedError(_NO_DB)

    def check_password(self, raw_password: str) -> bool:
        raise NotImplementedError(_NO_DB)


class TokenPermissions:
    """The permission methods laid over one user instance for one request."""

    def __init__(self, user: AbstractBaseUser, token: AccessToken, delegated: bool) -> None:
        self.user, self.token, self.delegated = user, token, delegated

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        if not self.user.is_active or perm not in self.token.permissions:
            return False
        # Delegation: the user's own grant is needed too (the model's method, through the
        # authentication backends, is still reachable on the class).
        return not self.delegated or type(self.user).has_perm(self.user, perm, obj)

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in _perm_list(perm_list))

    def has_module_perms(self, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in self.get_all_permissions())

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return {perm for perm in self.token.permissions if self.has_perm(perm, obj)}

    async def ahas_perm(self, perm: str, obj: Any = None) -> bool:
        if not self.delegated:
            return self.has_perm(perm, obj)
        if not self.user.is_active or perm not in self.token.permissions:
            return False
        return await type(self.user).ahas_perm(self.user, perm, obj)

    async def ahas_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        for perm in _perm_list(perm_list):
            if not await self.ahas_perm(perm, obj):
                return False
        return True

    async def aget_all_permissions(self, obj: Any = None) -> set[str]:
        return {perm for perm in self.token.permissions if await self.ahas_perm(perm, obj)}

    async def ahas_module_perms(self, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in await self.aget_all_permissions())


#: The user methods :func:`with_token_permissions` replaces on the instance.
OVERLAID = (
    "has_perm",
    "has_perms",
    "has_module_perms",
    "get_all_permissions",
    "ahas_perm",
    "ahas_perms",
    "ahas_module_perms",
    "aget_all_permissions",
)


def with_token_permissions(user: AbstractBaseUser, token: AccessToken) -> AbstractBaseUser:
    """Return ``user`` answering permission checks from the token, for this request only.

    The instance gains ``bearer_token`` (the :class:`AccessToken`, as a service principal has);
    nothing is saved. ``get_user_permissions``/``get_group_permissions`` still tell what the account holds.
    """
    overlay = TokenPermissions(user, token, token.source.bearer_delegation)
    for name in OVERLAID:
        setattr(user, name, getattr(overlay, name))
    user.bearer_token = token
    return user
