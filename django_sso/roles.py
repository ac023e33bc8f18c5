"""Role mapping: what a provider's grants and groups make a user inside the site.

At every sign-in the backend calls :func:`sync`: it reads the values the provider sent
(:mod:`django_sso.internal.grants`), maps them to the roles the source's configuration names
(:func:`desired_roles`: permissions resolved in one query, groups, the staff and superuser flags),
lets the adapter adjust them (``map_roles``) and applies the difference (:func:`apply`). The
number of queries does not grow with the number of grants.

Sync semantics: what the provider grants is added; what this source granted before and the
provider no longer grants is removed. Each source's grants are recorded as
:class:`~django_sso.models.Grant` rows, so a permission, group or flag stays while any source
still grants it, and one the user had before any source granted it (given by hand) is never
removed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import FieldDoesNotExist
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from django_sso.adapter import get_adapter
from django_sso.app_settings import app_settings
from django_sso.internal.grants import read_values
from django_sso.models import Grant, GrantKind, GroupMapping, Source

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.http import HttpRequest

logger = logging.getLogger("django_sso")

#: ``auth.Group.name`` length; longer mirrored names are skipped.
GROUP_NAME_MAX_LENGTH = Group._meta.get_field("name").max_length
FLAG_FIELDS = {GrantKind.STAFF: "is_staff", GrantKind.SUPERUSER: "is_superuser"}


@dataclass
class Roles:
    """The roles one sign-in maps to; the adapter's ``map_roles`` may change them."""

    permissions: set[Permission] = field(default_factory=set)
    groups: set[Group] = field(default_factory=set)
    is_staff: bool = False
    is_superuser: bool = False


@dataclass(frozen=True)
class RoleChanges:
    """What one sync changed on a user, by name; ``roles_synced`` carries an added and a removed one.

    ``permissions`` are ``app_label.codename``, ``groups`` are group names, ``flags`` are
    ``is_staff`` / ``is_superuser``; each sorted.
    """

    permissions: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.permissions or self.groups or self.flags)


# ---- from values to roles --------------------------------------------------------------------


def permission_names(source: Source, grants: Iterable[str]) -> list[str]:
    """Return the permission names in the grants that carry the source's prefix, prefix removed."""
    prefix = source.permission_prefix
    if not prefix:
        return []
    return [g[len(prefix) :] for g in grants if g.startswith(prefix) and len(g) > len(prefix)]


def resolve_permissions(
    names: Iterable[str], app_labels: Iterable[str] = (), *, source: Source | None = None
) -> list[Permission]:
    """Return the permissions that ``codename`` / ``app_label.codename`` names denote, in one query.

    With ``app_labels``, only permissions of those apps count. A bare codename must denote
    exactly one permission: one found in several apps is refused (logged at WARNING) unless
    ``app_labels`` narrows it to one. Unknown names are skipped (logged at INFO).
    """
    parsed: dict[str, tuple[str | None, str]] = {}
    for name in names:
        label, dot, codename = name.partition(".")
        parsed[name] = (label, codename) if dot else (None, name)
    codenames = {codename for _label, codename in parsed.values() if codename}
    if not codenames:
        return []
    labels = list(app_labels)
    query = Permission.objects.filter(codename__in=codenames).select_related("content_type")
    if labels:
        query = query.filter(content_type__app_label__in=labels)
    by_codename: dict[str, list[Permission]] = defaultdict(list)
    for permission in query:
        by_codename[permission.codename].append(permission)
    slug = source.slug if source else "-"
    found: dict[int, Permission] = {}
    for name, (label, codename) in parsed.items():
        candidates = [
            p for p in by_codename.get(codename, []) if label is None or p.content_type.app_label == label
        ]
        if len(candidates) == 1:
            found[candidates[0].pk] = candidates[0]
        elif candidates:
            apps = sorted({p.content_type.app_label for p in candidates})
            logger.warning(
                "sso.roles.ambiguous_permission source=%s name=%r apps=%s", slug, name, ",".join(apps)
            )
        else:
            logger.info("sso.roles.unknown_permission source=%s name=%r", slug, name)
    return list(found.values())


def mapped_groups(source: Source, values: Iterable[str]) -> list[Group]:
    """Return the groups the source's mapping table assigns to these provider values."""
    values = list(values)
    if not values:
        return []
    rows = GroupMapping.objects.filter(source=source, value__in=values).select_related("group")
    return [row.group for row in rows]


def mirrored_groups(source: Source, values: Iterable[str]) -> list[Group]:
    """Return the group named prefix + value for each provider group, creating missing ones."""
    prefix = source.mirror_group_prefix
    if not prefix:
        # An empty prefix would let a provider group named like a local group ("Administrators")
        # join that group; the form refuses it, this guards rows saved otherwise.
        logger.warning("sso.roles.mirror_without_prefix source=%s", source.slug)
        return []
    names = {prefix + value for value in values}
    names = {name for name in names if len(name) <= GROUP_NAME_MAX_LENGTH}
    if not names:
        return []
    groups = list(Group.objects.filter(name__in=names))
    missing = names - {group.name for group in groups}
    if missing:
        # ignore_conflicts: two first sign-ins at once may both create a group.
        Group.objects.bulk_create([Group(name=name) for name in sorted(missing)], ignore_conflicts=True)
        groups += Group.objects.filter(name__in=missing)
    return groups


def desired_roles(source: Source, claims: dict[str, Any], token: dict[str, Any]) -> Roles:
    """Return the roles the source's mapping gives for this sign-in's claims and token response.

    Staff and superuser values match the provider's groups and its grants (as sent, prefix and
    all). ``is_superuser`` is reported as mapped; :func:`apply` ignores it unless
    ``DJANGO_SSO_ALLOW_SUPERUSER_MAPPING`` is on.
    """
    values = read_values(source, claims, token)
    roles = Roles()
    names = permission_names(source, values.grants)
    if names:
        roles.permissions.update(resolve_permissions(names, source.permission_app_label_list, source=source))
    if values.groups:
        roles.groups.update(mapped_groups(source, values.groups))
        if source.mirror_groups:
            roles.groups.update(mirrored_groups(source, values.groups))
    pool = {*values.grants, *values.groups}
    roles.is_staff = bool(pool & set(source.staff_value_list))
    roles.is_superuser = bool(pool & set(source.superuser_value_list))
    return roles


# ---- applying the difference -----------------------------------------------------------------


def _has_field(model: type[Any], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _permission_label(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _wanted(user: AbstractBaseUser, roles: Roles) -> dict[tuple[str, int | None], str]:
    """Return the roles as {(kind, target id): name}, keeping only what the user model has."""
    model = type(user)
    wanted: dict[tuple[str, int | None], str] = {}
    if _has_field(model, "user_permissions"):
        for permission in roles.permissions:
            wanted[(GrantKind.PERMISSION, permission.pk)] = _permission_label(permission)
    if _has_field(model, "groups"):
        for group in roles.groups:
            wanted[(GrantKind.GROUP, group.pk)] = group.name
    if roles.is_staff and _has_field(model, "is_staff"):
        wanted[(GrantKind.STAFF, None)] = "is_staff"
    if roles.is_superuser and app_settings.ALLOW_SUPERUSER_MAPPING and _has_field(model, "is_superuser"):
        wanted[(GrantKind.SUPERUSER, None)] = "is_superuser"
    return wanted


def _key(grant: Grant) -> tuple[str, int | None]:
    if grant.kind == GrantKind.PERMISSION:
        return (grant.kind, grant.permission_id)
    if grant.kind == GrantKind.GROUP:
        return (grant.kind, grant.group_id)
    return (grant.kind, None)


def _held(user: AbstractBaseUser, kinds: set[str]) -> set[tuple[str, int | None]]:
    """Return what the user has now, for the kinds in play (one query per relation)."""
    held: set[tuple[str, int | None]] = set()
    if GrantKind.PERMISSION in kinds:
        ids = user.user_permissions.values_list("pk", flat=True)  # type: ignore[attr-defined]
        held.update((GrantKind.PERMISSION, pk) for pk in ids)
    if GrantKind.GROUP in kinds:
        ids = user.groups.values_list("pk", flat=True)  # type: ignore[attr-defined]
        held.update((GrantKind.GROUP, pk) for pk in ids)
    for kind, attribute in FLAG_FIELDS.items():
        if kind in kinds and getattr(user, attribute, False):
            held.add((kind, None))
    return held


def _changes(names: Iterable[tuple[str, str]]) -> RoleChanges:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, name in names:
        by_kind[kind].append(name)
    return RoleChanges(
        permissions=tuple(sorted(by_kind[GrantKind.PERMISSION])),
        groups=tuple(sorted(by_kind[GrantKind.GROUP])),
        flags=tuple(sorted(by_kind[GrantKind.STAFF] + by_kind[GrantKind.SUPERUSER])),
    )


def apply(
    user: AbstractBaseUser, source: Source, roles: Roles, *, holds_grants: bool = True
) -> tuple[RoleChanges, RoleChanges]:
    """Make the user's roles from ``source`` equal ``roles``; return ``(added, removed)``.

    Adds what is wanted and missing; takes back what this source granted and no longer
    grants, unless another source still grants it. What the user already had with no source's
    grant behind it is left alone and not recorded: it was given by hand. Run it in a
    transaction; the queries are bulk, their number independent of the number of roles.
    """
    wanted = _wanted(user, roles)
    if not wanted and not holds_grants:
        return RoleChanges(), RoleChanges()
    mine: dict[tuple[str, int | None], Grant] = {}
    others: set[tuple[str, int | None]] = set()
    for grant in Grant.objects.filter(user=user).select_related("permission__content_type", "group"):
        if grant.source_id == source.pk:
            mine[_key(grant)] = grant
        else:
            others.add(_key(grant))
    if not wanted and not mine:
        return RoleChanges(), RoleChanges()
    held = _held(user, {kind for kind, _id in [*wanted, *mine]})

    to_add: list[tuple[str, int | None]] = []
    to_record: list[tuple[str, int | None]] = []
    for key in wanted:
        if key in mine:
            if key not in held:
                to_add.append(key)  # removed by hand, but the provider still grants it
            continue
        if key in held and key not in others:
            continue  # given by hand before any source granted it: never ours to take back
        to_record.append(key)
        if key not in held:
            to_add.append(key)
    stale = [grant for key, grant in mine.items() if key not in wanted]
    to_revoke = [_key(g) for g in stale if _key(g) in held and _key(g) not in others]

    _write(user, source, to_add, to_record, stale, to_revoke)
    added = _changes((kind, wanted[(kind, pk)]) for kind, pk in to_add)
    removed_names = {_key(g): FLAG_FIELDS.get(g.kind) or g.target for g in stale}
    removed = _changes((kind, removed_names[(kind, pk)]) for kind, pk in to_revoke)
    return added, removed


def _write(
    user: AbstractBaseUser,
    source: Source,
    to_add: list[tuple[str, int | None]],
    to_record: list[tuple[str, int | None]],
    stale: list[Grant],
    to_revoke: list[tuple[str, int | None]],
) -> None:
    def ids(keys: list[tuple[str, int | None]], kind: str) -> list[int]:
        return [pk for k, pk in keys if k == kind and pk is not None]

    # The related managers send m2m_changed, so caches other apps keep on it stay right.
    if ids(to_add, GrantKind.PERMISSION):
        user.user_permissions.add(*ids(to_add, GrantKind.PERMISSION))  # type: ignore[attr-defined]
    if ids(to_revoke, GrantKind.PERMISSION):
        user.user_permissions.remove(*ids(to_revoke, GrantKind.PERMISSION))  # type: ignore[attr-defined]
    if ids(to_add, GrantKind.GROUP):
        user.groups.add(*ids(to_add, GrantKind.GROUP))  # type: ignore[attr-defined]
    if ids(to_revoke, GrantKind.GROUP):
        user.groups.remove(*ids(to_revoke, GrantKind.GROUP))  # type: ignore[attr-defined]
    flags = []
    for kind, attribute in FLAG_FIELDS.items():
        if (kind, None) in to_add:
            setattr(user, attribute, True)
            flags.append(attribute)
        elif (kind, None) in to_revoke:
            setattr(user, attribute, False)
            flags.append(attribute)
    if flags:
        user.save(update_fields=flags)
    if stale:
        Grant.objects.filter(pk__in=[grant.pk for grant in stale]).delete()
    if to_record:
        Grant.objects.bulk_create(
            [
                Grant(
                    user=user,
                    source=source,
                    kind=kind,
                    permission_id=pk if kind == GrantKind.PERMISSION else None,
                    group_id=pk if kind == GrantKind.GROUP else None,
                )
                for kind, pk in to_record
            ],
            ignore_conflicts=True,
        )
    # ModelBackend caches permissions on the instance; this one must see the new ones.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)


def sync(
    user: AbstractBaseUser,
    source: Source,
    claims: dict[str, Any],
    token: dict[str, Any],
    request: HttpRequest | None = None,
    holds_grants: bool = True,
) -> tuple[RoleChanges, RoleChanges]:
    """Apply the source's role mapping for one sign-in; return ``(added, removed)``.

    The adapter's ``map_roles`` sees the mapped roles first and may change them.
    ``holds_grants=False`` (the caller knows the user holds no grant from this source) lets a
    sign-in that maps nothing skip the database entirely.
    """
    roles = desired_roles(source, claims, token)
    roles = get_adapter().map_roles(request, source, claims, token, roles)
    return apply(user, source, roles, holds_grants=holds_grants)


@receiver(pre_delete, sender=Source, dispatch_uid="django_sso.roles.revoke_deleted_source")
def revoke_deleted_source(sender: type[Source], instance: Source, **kwargs: Any) -> None:
    """Take back what a deleted source granted (and no other source grants) from every user.

    Without this its grants would outlive it, indistinguishable from grants given by hand.
    """
    grants = list(Grant.objects.filter(source=instance).select_related("user"))
    if not grants:
        return
    others = set(
        Grant.objects.filter(user_id__in={g.user_id for g in grants})
        .exclude(source=instance)
        .values_list("user_id", "kind", "permission_id", "group_id")
    )
    by_user: dict[int, list[Grant]] = defaultdict(list)
    for grant in grants:
        if (grant.user_id, grant.kind, grant.permission_id, grant.group_id) not in others:
            by_user[grant.user_id].append(grant)
    for user_grants in by_user.values():
        user = user_grants[0].user
        held = _held(user, {g.kind for g in user_grants})
        _write(user, instance, [], [], [], [_key(g) for g in user_grants if _key(g) in held])
