"""Role mapping against the real provider (npm oidc-provider on loopback).

Each test signs in as its own account (``set_account``), so the session-wide provider's other
accounts are never changed. Grants come from the token response's ``scope`` (the provider
grants the permission scopes the sign-in asks for) or from the account's ``roles`` /
``groups`` claims, which ``set_account`` changes between two sign-ins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from django_sso.models import Grant, GroupMapping, Source
from tests.conftest import (
    E2E_CLIENT_ID,
    E2E_CLIENT_SECRET,
    E2E_SCOPES,
    e2e_redirect_uris,
    make_discovered_source,
)
from tests.support.op_server import OPServer

pytestmark = pytest.mark.e2e

User = get_user_model()


def account(login: str, **claims: Any) -> dict[str, Any]:
    return {
        "sub": f"{login}-sub",
        "email": f"{login}@example.com",
        "email_verified": True,
        "name": login.title(),
        "preferred_username": login,
        **claims,
    }


def signed_in(real_sign_in: Any, login: str, slug: str = "local") -> Any:
    result = real_sign_in(slug, login=login)
    assert result.response.status_code == 303, result.response.content
    return User.objects.get(username=login)


def direct_permissions(user: Any) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in User.objects.get(pk=user.pk).user_permissions.all()
    }


def group_names(user: Any) -> set[str]:
    return set(User.objects.get(pk=user.pk).groups.values_list("name", flat=True))


def fresh(user: Any) -> Any:
    return User.objects.get(pk=user.pk)


@pytest.fixture
def roles_source(db: Any, oidc_provider: OPServer) -> Source:
    """Grants from the provider's ``roles`` claim, prefix "app:"."""
    return make_discovered_source(
        oidc_provider, scopes="openid email profile roles", permission_prefix="app:", permission_claim="roles"
    )


def test_a_granted_scope_becomes_the_permission(db, client, oidc_provider, real_sign_in):
    make_discovered_source(oidc_provider, permission_prefix="app:", permission_scopes="app:manage_orders")
    oidc_provider.set_account("scoped", account("scoped"))
    result = real_sign_in(login="scoped")
    asked = parse_qs(urlsplit(result.authorize_url).query)["scope"][0].split()
    assert asked == ["openid", "email", "profile", "app:manage_orders"]
    assert result.response.status_code == 303, result.response.content
    user = User.objects.get(username="scoped")
    assert user.has_perm("shop.manage_orders")
    assert not user.has_perm("shop.manage_users")
    assert client.get("/shop/orders/").status_code == 200


def test_a_grant_the_provider_takes_back_is_removed_at_the_next_sign_in(
    client, roles_source, oidc_provider, real_sign_in
):
    oidc_provider.set_account(
        "changing", account("changing", roles=["app:manage_orders", "app:shop.manage_users"])
    )
    user = signed_in(real_sign_in, "changing")
    assert user.has_perm("shop.manage_orders")
    assert user.has_perm("shop.manage_users")
    assert client.get("/shop/orders/").status_code == 200
    oidc_provider.set_account("changing", account("changing", roles=["app:manage_users", "other-role"]))
    user = signed_in(real_sign_in, "changing")
    assert not user.has_perm("shop.manage_orders")
    assert user.has_perm("shop.manage_users")
    assert client.get("/shop/orders/").status_code == 403


def test_a_hand_granted_permission_survives(roles_source, oidc_provider, real_sign_in):
    oidc_provider.set_account("handy", account("handy", roles=[]))
    user = signed_in(real_sign_in, "handy")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="shop", codename="manage_users"))
    oidc_provider.set_account("handy", account("handy", roles=["app:manage_orders", "app:manage_users"]))
    user = signed_in(real_sign_in, "handy")
    assert direct_permissions(user) == {"shop.manage_orders", "shop.manage_users"}
    oidc_provider.set_account("handy", account("handy", roles=[]))
    user = signed_in(real_sign_in, "handy")
    assert direct_permissions(user) == {"shop.manage_users"}
    assert user.has_perm("shop.manage_users")


def test_an_ambiguous_codename_is_refused_until_the_source_names_the_app(
    roles_source, oidc_provider, real_sign_in, sso_log
):
    Permission.objects.create(
        codename="manage_orders",
        name="Manage orders (auth)",
        content_type=ContentType.objects.get_for_model(Group),
    )
    oidc_provider.set_account("ambiguous", account("ambiguous", roles=["app:manage_orders"]))
    user = signed_in(real_sign_in, "ambiguous")
    assert direct_permissions(user) == set()
    assert "sso.roles.ambiguous_permission source=local name='manage_orders' apps=auth,shop" in sso_log.text
    roles_source.permission_app_labels = "shop"
    roles_source.save()
    user = signed_in(real_sign_in, "ambiguous")
    assert direct_permissions(user) == {"shop.manage_orders"}


def test_group_mapping_and_mirroring(db, oidc_provider, real_sign_in):
    source = make_discovered_source(
        oidc_provider,
        scopes="openid email profile groups",
        groups_claim="groups",
        mirror_groups=True,
        mirror_group_prefix="sso:",
    )
    shop_staff = Group.objects.create(name="Shop staff")
    shop_staff.permissions.add(
        Permission.objects.get(content_type__app_label="shop", codename="manage_orders")
    )
    GroupMapping.objects.create(source=source, value="staff", group=shop_staff)
    oidc_provider.set_account("grouped", account("grouped", groups=["staff", "night shift"]))
    user = signed_in(real_sign_in, "grouped")
    assert group_names(user) == {"Shop staff", "sso:staff", "sso:night shift"}
    assert user.has_perm("shop.manage_orders")
    oidc_provider.set_account("grouped", account("grouped", groups=["night shift"]))
    user = signed_in(real_sign_in, "grouped")
    assert group_names(user) == {"sso:night shift"}
    assert not user.has_perm("shop.manage_orders")


def test_staff_flag_follows_a_provider_group(db, oidc_provider, real_sign_in):
    make_discovered_source(
        oidc_provider, scopes="openid email profile groups", groups_claim="groups", staff_values="site admins"
    )
    oidc_provider.set_account("staffer", account("staffer", groups=["site admins"]))
    assert signed_in(real_sign_in, "staffer").is_staff
    oidc_provider.set_account("staffer", account("staffer", groups=[]))
    assert not signed_in(real_sign_in, "staffer").is_staff


@pytest.fixture(scope="module")
def second_provider(oidc_provider: OPServer) -> Iterator[OPServer]:
    """Another provider (another issuer) with the same client registration."""
    config = {
        "port": 0,
        "clients": [
            {
                "client_id": E2E_CLIENT_ID,
                "client_secret": E2E_CLIENT_SECRET,
                "redirect_uris": e2e_redirect_uris(),
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
            }
        ],
        "scopes": E2E_SCOPES,
    }
    with OPServer(config) as server:
        yield server


def test_two_sources_for_one_user(roles_source, oidc_provider, second_provider, real_sign_in):
    second = make_discovered_source(
        second_provider,
        slug="local-2",
        name="Second provider",
        scopes="openid email profile roles",
        permission_prefix="app:",
        permission_claim="roles",
        link_existing_by_email=True,
        email_trusted=True,
    )
    oidc_provider.set_account("twice", account("twice", roles=["app:manage_orders"]))
    second_provider.set_account("twice", account("twice", roles=["app:manage_orders", "app:manage_users"]))
    signed_in(real_sign_in, "twice")
    user = signed_in(real_sign_in, "twice", slug="local-2")
    assert User.objects.count() == 1
    assert direct_permissions(user) == {"shop.manage_orders", "shop.manage_users"}
    # The first provider withdraws manage_orders; the second still grants it.
    oidc_provider.set_account("twice", account("twice", roles=[]))
    user = signed_in(real_sign_in, "twice")
    assert direct_permissions(user) == {"shop.manage_orders", "shop.manage_users"}
    assert not Grant.objects.filter(source=roles_source).exists()
    # Now the second withdraws it too.
    second_provider.set_account("twice", account("twice", roles=["app:manage_users"]))
    user = signed_in(real_sign_in, "twice", slug="local-2")
    assert direct_permissions(user) == {"shop.manage_users"}
    assert {g.target for g in Grant.objects.filter(source=second)} == {"shop.manage_users"}
    assert fresh(user).has_perm("shop.manage_users")
