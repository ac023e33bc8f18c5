"""Role mapping (django_sso.roles) through whole sign-ins against the scriptable provider.

What the provider grants becomes permissions, groups and flags; what it stops granting is taken
back at the next sign-in; what was granted by hand, or by another source, stays.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.checks import run_checks
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_sso import roles
from django_sso.backends import SSOBackend
from django_sso.forms import SourceForm
from django_sso.internal import source_cache
from django_sso.internal.grants import MAX_VALUES, MISSING, as_values, lookup
from django_sso.internal.oauth2 import requested_scopes
from django_sso.models import Grant, GroupMapping, Source
from django_sso.roles import RoleChanges
from django_sso.signals import roles_synced
from tests.conftest import make_source
from tests.fakeop import DROP, FakeNetworkAdapter, FakeOP
from tests.test_discovery import form_data

User = get_user_model()
API = "https://api.example.test"


def shop_permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="shop", codename=codename)


def direct_permissions(username: str = "alice") -> set[str]:
    user = User.objects.get(username=username)
    return {f"{p.content_type.app_label}.{p.codename}" for p in user.user_permissions.all()}


def group_names(username: str = "alice") -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def grants_of(source: Source, username: str = "alice") -> set[str]:
    rows = Grant.objects.filter(source=source, user__username=username)
    return {row.target for row in rows.select_related("permission__content_type", "group")}


def signed_in(sign_in: Any, slug: str = "honest", **kwargs: Any) -> Any:
    result = sign_in(slug, **kwargs)
    assert result.response.status_code == 303, result.response.content
    return User.objects.get(username=kwargs.get("user", "alice"))


def grant(op: FakeOP, scope: str) -> None:
    """Make the provider's token response say it granted ``scope``."""
    op.scenario["token"] = {"scope": scope}


@pytest.fixture
def scoped(db: Any, op: FakeOP) -> Source:
    """A source with scope permissions on (prefix "app:")."""
    return make_source(op, "honest", permission_prefix="app:", permission_scopes="app:manage_orders")


# ---- reading values ----------------------------------------------------------------------------


def test_lookup_follows_dotted_paths():
    claims = {"realm_access": {"roles": ["a"]}, "resource_access": {"shop": {"roles": ["b"]}}}
    assert lookup(claims, "realm_access.roles") == ["a"]
    assert lookup(claims, "resource_access.shop.roles") == ["b"]
    assert lookup(claims, "resource_access.other.roles") is MISSING
    assert lookup(claims, "realm_access.roles.extra") is MISSING
    assert lookup({"roles": "x"}, "roles.deeper") is MISSING


def test_lookup_takes_keys_that_hold_dots_as_typed():
    claims = {
        "https://example.com/roles": ["auth0"],
        "resource_access": {"my.app": {"roles": ["kc"]}, "my": {"other": 1}},
    }
    assert lookup(claims, "https://example.com/roles") == ["auth0"]
    assert lookup(claims, "resource_access.my.app.roles") == ["kc"]


def test_values_are_space_separated_strings_or_lists_of_strings_and_nothing_else():
    assert as_values("app:a  app:b app:a") == ["app:a", "app:b"]
    assert as_values(["Domain Admins", "", 7, None, {"x": 1}, "ops"]) == ["Domain Admins", "ops"]
    for other in (123, 1.5, True, None, {"app:a": True}, MISSING):
        assert as_values(other) == []


def test_a_huge_claim_is_cut_and_logged(sso_log):
    values = as_values([f"g{n}" for n in range(MAX_VALUES + 10)], path="groups")
    assert len(values) == MAX_VALUES
    assert "sso.roles.too_many_values" in sso_log.text


# ---- scope permissions -------------------------------------------------------------------------


def test_the_sign_in_asks_for_the_permission_scopes_only_when_the_prefix_is_set(db, op, sign_in):
    source = make_source(op, "honest", permission_scopes="app:manage_orders app:manage_users")
    assert requested_scopes(source) == ["openid", "email", "profile"]
    source.permission_prefix = "app:"
    source.save()
    result = sign_in()
    assert result.authorize_params["scope"] == "openid email profile app:manage_orders app:manage_users"


def test_a_granted_scope_becomes_the_permission(client, scoped, op, sign_in):
    grant(op, "openid email profile app:manage_orders")
    user = signed_in(sign_in)
    assert user.has_perm("shop.manage_orders")
    assert not user.has_perm("shop.manage_users")
    assert client.get("/shop/orders/").status_code == 200
    assert grants_of(scoped) == {"shop.manage_orders"}


def test_a_qualified_name_resolves_in_its_app(scoped, op, sign_in):
    grant(op, "openid app:shop.manage_users")
    user = signed_in(sign_in)
    assert user.has_perm("shop.manage_users")
    assert direct_permissions() == {"shop.manage_users"}


def test_what_the_provider_did_not_grant_grants_nothing(scoped, op, sign_in):
    # The sign-in asked for app:manage_orders; the provider granted only the usual scopes.
    grant(op, "openid email profile")
    user = signed_in(sign_in)
    assert not user.has_perm("shop.manage_orders")


def test_a_missing_scope_in_the_token_response_grants_nothing(scoped, op, sign_in):
    # RFC 6749 5.1 reads an absent scope as "as requested"; permissions need an explicit grant.
    op.scenario["token"] = {"scope": DROP}
    user = signed_in(sign_in)
    assert direct_permissions() == set()
    assert not user.has_perm("shop.manage_orders")


def test_scopes_without_the_prefix_are_ignored(scoped, op, sign_in):
    grant(op, "openid manage_orders shop.manage_orders App:manage_users perm:manage_users app:")
    signed_in(sign_in)
    assert direct_permissions() == set()


@pytest.mark.case("RS-08")
@pytest.mark.parametrize(
    "scope",
    [
        "openid app:manage_orders\tapp:manage_users",
        "openid app:manage_orders,app:manage_users",
        "openid APP:MANAGE_ORDERS",
    ],
)
def test_scope_tokens_are_split_on_spaces_only_and_match_exactly(scoped, op, sign_in, scope):
    grant(op, scope)
    signed_in(sign_in)
    assert direct_permissions() == set()


def test_scope_permissions_off_without_a_prefix(db, op, sign_in):
    make_source(op, "honest")
    grant(op, "openid app:manage_orders app:shop.manage_users")
    signed_in(sign_in)
    assert direct_permissions() == set()
    assert not Grant.objects.exists()


def test_unknown_names_grant_nothing_and_are_logged(scoped, op, sign_in, sso_log):
    grant(op, "openid app:no_such_thing app:shop.no_such_thing app:auth.manage_orders app:.x")
    signed_in(sign_in)
    assert direct_permissions() == set()
    assert "sso.roles.unknown_permission source=honest name='no_such_thing'" in sso_log.text
    assert "name='auth.manage_orders'" in sso_log.text


@pytest.fixture
def second_manage_orders(db: Any) -> Permission:
    """The codename manage_orders in a second app too (auth), so the bare name is ambiguous."""
    return Permission.objects.create(
        codename="manage_orders",
        name="Manage orders (auth)",
        content_type=ContentType.objects.get_for_model(Group),
    )


def test_an_ambiguous_bare_codename_is_refused_and_logged(scoped, op, sign_in, sso_log, second_manage_orders):
    grant(op, "openid app:manage_orders")
    user = signed_in(sign_in)
    assert direct_permissions() == set()
    assert not user.has_perm("shop.manage_orders")
    assert not user.has_perm("auth.manage_orders")
    warning = next(r for r in sso_log.records if "ambiguous_permission" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "name='manage_orders' apps=auth,shop" in warning.getMessage()


def test_the_sources_app_labels_settle_an_ambiguous_codename(scoped, op, sign_in, second_manage_orders):
    scoped.permission_app_labels = "shop"
    scoped.save()
    grant(op, "openid app:manage_orders")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}


def test_a_qualified_name_is_never_ambiguous(scoped, op, sign_in, second_manage_orders):
    grant(op, "openid app:shop.manage_orders")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}


def test_app_labels_keep_the_provider_out_of_other_apps(scoped, op, sign_in):
    scoped.permission_app_labels = "shop"
    scoped.save()
    grant(op, "openid app:auth.change_user app:add_user app:shop.manage_users")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_users"}


# ---- where grants are read from ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "claim"),
    [
        ("permissions", {"permissions": ["app:manage_orders", "read:things"]}),  # Auth0 RBAC
        ("roles", {"roles": ["app:manage_orders"]}),  # Entra ID app roles
        ("scp", {"scp": ["openid", "app:manage_orders"]}),  # Okta
        ("realm_access.roles", {"realm_access": {"roles": ["app:manage_orders"]}}),  # Keycloak
        (
            "resource_access.rp-client.roles",
            {"resource_access": {"rp-client": {"roles": ["app:manage_orders"]}}},
        ),
        ("https://example.com/claims.perms", {"https://example.com/claims": {"perms": "app:manage_orders"}}),
    ],
)
def test_grants_are_read_from_the_configured_claim_path(db, op, sign_in, path, claim):
    make_source(op, "honest", permission_prefix="app:", permission_claim=path)
    op.users["alice"].update(claim)
    grant(op, "openid app:shop.manage_users")  # not read: the claim path is configured
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}


def test_a_claim_from_userinfo_counts(db, op, sign_in):
    make_source(op, "honest", permission_prefix="app:", permission_claim="roles")
    op.scenario["userinfo"] = {"roles": ["app:manage_users"]}
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_users"}


def test_a_claim_of_another_type_grants_nothing(db, op, sign_in):
    make_source(op, "honest", permission_prefix="app:", permission_claim="roles", groups_claim="groups")
    op.users["alice"].update({"roles": {"app:manage_orders": True}, "groups": 42})
    signed_in(sign_in)
    assert direct_permissions() == set()
    assert group_names() == set()


def access_token(op: FakeOP, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": op.issuer, "aud": API, "sub": "alice-sub", "iat": now, "exp": now + 300}
    claims.update(overrides)
    return op.mint({k: v for k, v in claims.items() if v is not DROP}, {"typ": "at+jwt"})


@pytest.fixture
def okta_like(db: Any, op: FakeOP) -> Source:
    """Grants in the access token's scp claim, read only from a verified JWT for API."""
    return make_source(
        op, "honest", permission_prefix="app:", permission_claim="scp", access_token_audience=API
    )


def test_grants_are_read_from_an_access_token_that_verifies(okta_like, op, sign_in):
    op.scenario["token"] = {"access_token": access_token(op, scp=["openid", "app:manage_orders"])}
    op.scenario["id_token"] = {"at_hash": DROP}
    op.scenario["respond"] = {
        "/userinfo": (200, {"Content-Type": "application/json"}, b'{"sub": "alice-sub"}')
    }
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}


@pytest.mark.parametrize(
    ("name", "forge"),
    [
        ("wrong audience", lambda op: access_token(op, aud="https://other.api", scp="app:manage_orders")),
        (
            "wrong issuer",
            lambda op: access_token(op, iss="https://op.example/attacker", scp="app:manage_orders"),
        ),
        ("expired", lambda op: access_token(op, exp=int(time.time()) - 3600, scp="app:manage_orders")),
        ("no exp", lambda op: access_token(op, exp=DROP, scp="app:manage_orders")),
        (
            "foreign key",
            lambda op: op.mint(
                {"iss": op.issuer, "aud": API, "exp": int(time.time()) + 300, "scp": "app:manage_orders"},
                key=FakeOP("https://op.example/other", key_index=1).keys[0],
            ),
        ),
        ("unsigned", lambda op: access_token(op, scp="app:manage_orders").rsplit(".", 1)[0] + "."),
    ],
)
def test_an_access_token_that_does_not_verify_grants_nothing(okta_like, op, sign_in, sso_log, name, forge):
    op.scenario["token"] = {"access_token": forge(op)}
    op.scenario["respond"] = {
        "/userinfo": (200, {"Content-Type": "application/json"}, b'{"sub": "alice-sub"}')
    }
    signed_in(sign_in)
    assert direct_permissions() == set(), name
    assert "sso.roles.access_token_refused source=honest code=sso.access_token." in sso_log.text


def test_the_access_token_is_not_read_without_a_configured_audience(db, op, sign_in):
    make_source(op, "honest", permission_prefix="app:", permission_claim="scp")
    op.scenario["token"] = {"access_token": access_token(op, scp="app:manage_orders")}
    op.scenario["respond"] = {
        "/userinfo": (200, {"Content-Type": "application/json"}, b'{"sub": "alice-sub"}')
    }
    signed_in(sign_in)
    assert direct_permissions() == set()


def test_the_id_token_wins_over_the_access_token(okta_like, op, sign_in):
    op.users["alice"]["scp"] = ["app:manage_users"]
    op.scenario["token"] = {"access_token": access_token(op, scp="app:manage_orders")}
    op.scenario["respond"] = {
        "/userinfo": (200, {"Content-Type": "application/json"}, b'{"sub": "alice-sub"}')
    }
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_users"}


# ---- sync semantics: added, taken back, hand grants kept ----------------------------------------


def test_what_the_provider_no_longer_grants_is_removed_at_the_next_sign_in(scoped, op, sign_in):
    grant(op, "openid app:manage_orders app:manage_users")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders", "shop.manage_users"}
    grant(op, "openid app:manage_users")
    user = signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_users"}
    assert not user.has_perm("shop.manage_orders")
    assert grants_of(scoped) == {"shop.manage_users"}


def test_what_the_source_no_longer_maps_is_removed_at_the_next_sign_in(scoped, op, sign_in):
    scoped.groups_claim, scoped.staff_values = "groups", "admins"
    scoped.save()
    op.users["alice"]["groups"] = ["admins"]
    grant(op, "openid app:manage_orders")
    assert signed_in(sign_in).is_staff
    scoped.permission_prefix = scoped.permission_scopes = scoped.staff_values = ""
    scoped.save()
    user = signed_in(sign_in)  # the provider still sends the same grants and groups
    assert direct_permissions() == set()
    assert not user.is_staff
    assert not Grant.objects.exists()


def test_a_hand_granted_permission_survives(scoped, op, sign_in):
    signed_in(sign_in)  # the user exists; nothing granted yet
    User.objects.get(username="alice").user_permissions.add(shop_permission("manage_users"))
    grant(op, "openid app:manage_orders app:manage_users")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders", "shop.manage_users"}
    assert grants_of(scoped) == {"shop.manage_orders"}  # manage_users stays the admin's
    grant(op, "openid")
    user = signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_users"}
    assert user.has_perm("shop.manage_users")
    assert grants_of(scoped) == set()


def test_a_mapped_permission_removed_by_hand_comes_back_while_granted(scoped, op, sign_in):
    grant(op, "openid app:manage_orders")
    user = signed_in(sign_in)
    user.user_permissions.clear()
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}


def test_a_hand_granted_group_survives(db, op, sign_in):
    source = make_source(op, "honest", groups_claim="groups")
    orders = Group.objects.create(name="Orders")
    GroupMapping.objects.create(source=source, value="orders", group=orders)
    signed_in(sign_in)
    User.objects.get(username="alice").groups.add(orders)
    op.users["alice"]["groups"] = ["orders"]
    signed_in(sign_in)
    op.users["alice"]["groups"] = []
    signed_in(sign_in)
    assert group_names() == {"Orders"}
    assert not Grant.objects.exists()


# ---- groups --------------------------------------------------------------------------------------


@pytest.fixture
def grouped(db: Any, op: FakeOP) -> Source:
    source = make_source(op, "honest", groups_claim="groups", mirror_groups=True, mirror_group_prefix="sso:")
    orders = Group.objects.create(name="Shop orders")
    orders.permissions.add(shop_permission("manage_orders"))
    GroupMapping.objects.create(source=source, value="shop-staff", group=orders)
    GroupMapping.objects.create(
        source=source, value="shop-staff", group=Group.objects.create(name="Staff room")
    )
    return source


def test_group_mapping_and_mirroring_both_apply(grouped, op, sign_in):
    op.users["alice"]["groups"] = ["shop-staff", "Domain Admins", 7]
    user = signed_in(sign_in)
    assert group_names() == {"Shop orders", "Staff room", "sso:shop-staff", "sso:Domain Admins"}
    assert user.has_perm("shop.manage_orders")  # through the mapped group's permissions
    assert grants_of(grouped) == group_names()


def test_a_group_the_provider_drops_is_left_at_the_next_sign_in(grouped, op, sign_in):
    op.users["alice"]["groups"] = ["shop-staff", "ops"]
    signed_in(sign_in)
    op.users["alice"]["groups"] = ["ops"]
    user = signed_in(sign_in)
    assert group_names() == {"sso:ops"}
    assert not user.has_perm("shop.manage_orders")
    assert Group.objects.filter(name="sso:shop-staff").exists()  # the group itself stays


def test_mirrored_groups_are_created_once_and_reused(grouped, op, sign_in):
    Group.objects.create(name="sso:ops")
    op.users["alice"]["groups"] = ["ops", "new"]
    signed_in(sign_in)
    signed_in(sign_in)
    assert Group.objects.filter(name__startswith="sso:").count() == 2
    assert group_names() == {"sso:ops", "sso:new"}


def test_a_mirrored_name_too_long_for_a_group_is_skipped(grouped, op, sign_in):
    op.users["alice"]["groups"] = ["x" * 200, "ok"]
    signed_in(sign_in)
    assert group_names() == {"sso:ok"}


def test_deleting_a_mapping_row_takes_the_group_back_at_the_next_sign_in(grouped, op, sign_in):
    grouped.mirror_groups = False
    grouped.save()
    op.users["alice"]["groups"] = ["shop-staff"]
    signed_in(sign_in)
    GroupMapping.objects.filter(group__name="Staff room").delete()
    signed_in(sign_in)
    assert group_names() == {"Shop orders"}


def test_mirroring_without_a_prefix_is_refused(db, op, sign_in, sso_log):
    Group.objects.create(name="Administrators")
    make_source(op, "honest", groups_claim="groups", mirror_groups=True)
    op.users["alice"]["groups"] = ["Administrators"]
    signed_in(sign_in)
    assert group_names() == set()
    assert "sso.roles.mirror_without_prefix" in sso_log.text


# ---- staff and superuser -----------------------------------------------------------------------


def test_staff_comes_and_goes_with_a_named_provider_value(db, op, sign_in):
    make_source(op, "honest", groups_claim="groups", staff_values="Site Admins\nops")
    op.users["alice"]["groups"] = ["Site Admins"]
    assert signed_in(sign_in).is_staff
    op.users["alice"]["groups"] = ["everyone"]
    assert not signed_in(sign_in).is_staff


def test_staff_from_a_granted_scope(db, op, sign_in):
    make_source(op, "honest", staff_values="app:staff")
    grant(op, "openid app:staff")
    assert signed_in(sign_in).is_staff


def test_staff_is_off_unless_configured(db, op, sign_in):
    make_source(op, "honest", groups_claim="groups")
    op.users["alice"]["groups"] = ["staff", "admin", "is_staff"]
    assert not signed_in(sign_in).is_staff


def test_hand_given_staff_status_survives(db, op, sign_in):
    make_source(op, "honest", groups_claim="groups", staff_values="admins")
    signed_in(sign_in)
    User.objects.filter(username="alice").update(is_staff=True)
    op.users["alice"]["groups"] = ["admins"]
    signed_in(sign_in)
    op.users["alice"]["groups"] = []
    assert signed_in(sign_in).is_staff


def test_superuser_is_never_mapped_while_the_setting_is_off(db, op, sign_in):
    make_source(op, "honest", groups_claim="groups", superuser_values="root")
    op.users["alice"]["groups"] = ["root"]
    assert not signed_in(sign_in).is_superuser
    assert not Grant.objects.exists()


def test_superuser_is_mapped_when_allowed_and_taken_back_when_the_setting_goes_off(db, op, sign_in, settings):
    settings.DJANGO_SSO_ALLOW_SUPERUSER_MAPPING = True
    make_source(op, "honest", groups_claim="groups", superuser_values="root")
    op.users["alice"]["groups"] = ["root"]
    assert signed_in(sign_in).is_superuser
    settings.DJANGO_SSO_ALLOW_SUPERUSER_MAPPING = False
    assert not signed_in(sign_in).is_superuser


def test_superuser_values_with_the_setting_off_raise_a_database_check_warning(db, op, settings):
    make_source(op, "honest", superuser_values="root")
    make_source(FakeOP("https://op.example/plain"), "plain")
    warnings = [m for m in run_checks(databases=["default"]) if m.id == "django_sso.W005"]
    assert [m.obj for m in warnings] == ["honest"]
    assert not [m for m in run_checks() if m.id == "django_sso.W005"]  # no database: not run
    settings.DJANGO_SSO_ALLOW_SUPERUSER_MAPPING = True
    assert not [m for m in run_checks(databases=["default"]) if m.id == "django_sso.W005"]


# ---- two sources for one user --------------------------------------------------------------------


@pytest.fixture
def second_op(network: Any) -> FakeOP:
    provider = FakeOP("https://op.example/second", key_index=1)
    network.ops.append(provider)
    return provider


def test_two_sources_granting_one_permission_do_not_fight(scoped, second_op, op, sign_in):
    second = make_source(
        second_op,
        "second",
        permission_prefix="app:",
        link_existing_by_email=True,
        email_trusted=True,
        groups_claim="groups",
    )
    orders = Group.objects.create(name="Orders")
    GroupMapping.objects.create(source=second, value="orders", group=orders)
    grant(op, "openid app:manage_orders")
    signed_in(sign_in)
    grant(second_op, "openid app:manage_orders app:manage_users")
    second_op.users["alice"]["groups"] = ["orders"]
    signed_in(sign_in, "second", provider=second_op)
    assert User.objects.count() == 1
    assert grants_of(scoped) == {"shop.manage_orders"}
    assert grants_of(second) == {"shop.manage_orders", "shop.manage_users", "Orders"}
    # The first source stops granting manage_orders: the second still does, so it stays.
    grant(op, "openid")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders", "shop.manage_users"}
    assert grants_of(scoped) == set()
    # The first source's sign-in never touches the second's group.
    assert group_names() == {"Orders"}
    # Now the second stops too: gone.
    grant(second_op, "openid app:manage_users")
    second_op.users["alice"]["groups"] = []
    signed_in(sign_in, "second", provider=second_op)
    assert direct_permissions() == {"shop.manage_users"}
    assert group_names() == set()


def test_deleting_a_source_takes_back_only_what_it_alone_granted(scoped, second_op, op, sign_in):
    second = make_source(
        second_op, "second", permission_prefix="app:", link_existing_by_email=True, email_trusted=True
    )
    signed_in(sign_in)
    User.objects.get(username="alice").user_permissions.add(Permission.objects.get(codename="view_order"))
    grant(op, "openid app:manage_orders app:manage_users")
    signed_in(sign_in)
    grant(second_op, "openid app:manage_users")
    signed_in(sign_in, "second", provider=second_op)
    scoped.delete()
    assert direct_permissions() == {"shop.manage_users", "shop.view_order"}
    assert grants_of(second) == {"shop.manage_users"}


# ---- the signal, the adapter hook, the transaction ------------------------------------------------


def test_roles_synced_reports_what_changed_at_every_sign_in(grouped, op, sign_in):
    grouped.permission_prefix = "app:"
    grouped.staff_values = "shop-staff"
    grouped.save()
    seen: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        seen.append(kwargs)

    roles_synced.connect(record)
    try:
        op.users["alice"]["groups"] = ["shop-staff"]
        grant(op, "openid app:manage_users")
        signed_in(sign_in)
        signed_in(sign_in)
        op.users["alice"]["groups"] = []
        grant(op, "openid")
        signed_in(sign_in)
    finally:
        roles_synced.disconnect(record)
    assert [s["sender"] for s in seen] == [Source] * 3
    assert {s["user"].username for s in seen} == {"alice"}
    assert {s["source"] for s in seen} == {grouped}
    assert seen[0]["added"] == RoleChanges(
        permissions=("shop.manage_users",),
        groups=("Shop orders", "Staff room", "sso:shop-staff"),
        flags=("is_staff",),
    )
    assert seen[0]["removed"] == RoleChanges()
    assert not seen[1]["added"] and not seen[1]["removed"]
    assert seen[2]["added"] == RoleChanges()
    assert seen[2]["removed"] == seen[0]["added"]


class RolesAdapter(FakeNetworkAdapter):
    """Drops manage_users whatever the provider says; puts everyone in "Everyone"."""

    def map_roles(self, request, source, claims, token, roles):
        roles.permissions = {p for p in roles.permissions if p.codename != "manage_users"}
        roles.groups.add(Group.objects.get_or_create(name="Everyone")[0])
        assert claims["sub"] == "alice-sub" and "access_token" in token
        return roles


def test_the_adapter_may_change_the_mapped_roles(scoped, op, sign_in, settings):
    settings.DJANGO_SSO_ADAPTER = "tests.test_roles.RolesAdapter"
    grant(op, "openid app:manage_orders app:manage_users")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}
    assert group_names() == {"Everyone"}


class FailingRolesAdapter(FakeNetworkAdapter):
    def map_roles(self, request, source, claims, token, roles):
        raise RuntimeError("the audit service is down")


def test_a_failing_role_mapping_leaves_nothing_written(scoped, op, settings):
    settings.DJANGO_SSO_ADAPTER = "tests.test_roles.FailingRolesAdapter"
    claims = {**op.users["alice"], "iss": op.issuer}
    with pytest.raises(RuntimeError):
        SSOBackend().authenticate(None, sso_source=scoped, sso_claims=claims, sso_token={"scope": ["app:x"]})
    assert not User.objects.exists()
    assert not Grant.objects.exists()


def test_an_inactive_user_gets_no_roles(scoped, op, sign_in):
    grant(op, "openid")
    signed_in(sign_in)
    User.objects.filter(username="alice").update(is_active=False)
    grant(op, "openid app:manage_orders")
    result = sign_in()
    assert result.response.status_code == 403
    assert direct_permissions() == set()


# ---- query count: constant in the number of grants ---------------------------------------------


def _sync_queries(user: Any, source: Source, names: list[str]) -> int:
    token = {"scope": [f"app:{name}" for name in names], "scope_sent": True}
    with CaptureQueriesContext(connection) as queries:
        roles.sync(user, source, {}, token)
    return len(queries)


def _phases(source: Source, n: int) -> list[int]:
    """Queries of: a first sync adding n, the same again, one swapping all n for n others."""
    user = User.objects.create(username=f"user{n}")
    first = [f"bulk_{i:02d}" for i in range(n)]
    second = [f"bulk_{i:02d}" for i in range(50, 50 + n)]
    counts = [_sync_queries(user, source, first), _sync_queries(user, source, first)]
    counts.append(_sync_queries(user, source, second))
    assert direct_permissions(user.username) == {f"shop.{name}" for name in second}
    return counts


@pytest.fixture
def bulk_permissions(db: Any) -> None:
    content_type = ContentType.objects.get(app_label="shop", model="order")
    Permission.objects.bulk_create(
        [
            Permission(codename=f"bulk_{i:02d}", name=f"Bulk {i}", content_type=content_type)
            for i in range(100)
        ]
    )


def test_a_sync_takes_the_same_number_of_queries_for_5_and_50_permissions(
    db, op, bulk_permissions, django_assert_max_num_queries
):
    source = make_source(op, "honest", permission_prefix="app:")
    # Queries: the user's grants, the permissions by name, the user's permissions, then one bulk
    # write each for the permissions added / removed and the grants recorded / dropped.
    assert _phases(source, 5) == _phases(source, 50) == [5, 3, 7]
    user = User.objects.create(username="measured")
    names = [f"app:bulk_{i:02d}" for i in range(50)]
    with django_assert_max_num_queries(5):
        roles.sync(user, source, {}, {"scope": names})
    assert len(direct_permissions("measured")) == 50
    with django_assert_max_num_queries(7):
        roles.sync(user, source, {}, {"scope": names[:25] + [f"app:bulk_{i}" for i in range(50, 75)]})
    assert len(direct_permissions("measured")) == 50


def test_a_sync_with_50_mirrored_and_mapped_groups_takes_constant_queries(
    db, op, django_assert_max_num_queries
):
    source = make_source(op, "honest", groups_claim="groups", mirror_groups=True, mirror_group_prefix="m:")
    mapped = Group.objects.bulk_create([Group(name=f"mapped {i}") for i in range(50)])
    GroupMapping.objects.bulk_create(
        [GroupMapping(source=source, value=f"g{i}", group=group) for i, group in enumerate(mapped)]
    )
    counts = []
    for n in (5, 50):
        user = User.objects.create(username=f"grouped{n}")
        with CaptureQueriesContext(connection) as queries:
            roles.sync(user, source, {"groups": [f"g{i}" for i in range(n)]}, {})
        counts.append(len(queries))
        assert len(group_names(user.username)) == 2 * n
    assert counts[0] == counts[1]
    user = User.objects.create(username="grouped-again")
    with django_assert_max_num_queries(counts[1]):
        roles.sync(user, source, {"groups": [f"g{i}" for i in range(50)]}, {})


def test_a_source_without_role_mapping_costs_one_query(db, op):
    source = make_source(op, "honest")
    user = User.objects.create(username="plain")
    assert _sync_queries(user, source, ["manage_orders"]) == 1


# ---- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"permission_scopes": "app:manage_orders"}, "permission_scopes", "need a permission prefix"),
        ({"permission_prefix": "app:", "permission_scopes": "x:y"}, "permission_scopes", "must start with"),
        ({"permission_app_labels": "shop nosuchapp"}, "permission_app_labels", "nosuchapp"),
        ({"mirror_groups": True}, "mirror_group_prefix", "needs a prefix"),
        ({"permission_claim": "realm access.roles"}, "permission_claim", "No spaces"),
        ({"permission_prefix": "my app:"}, "permission_prefix", "No spaces"),
    ],
)
def test_the_form_refuses_unusable_role_mapping(db, op, fields, field, message):
    form = SourceForm(data=form_data(**{**_manual(op), **fields}))
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


def test_the_form_saves_role_mapping(db, op):
    values = {
        "permission_prefix": "app:",
        "permission_claim": "realm_access.roles",
        "permission_scopes": "app:manage_orders app:shop.manage_users",
        "permission_app_labels": "shop",
        "access_token_audience": API,
        "groups_claim": "groups",
        "mirror_groups": True,
        "mirror_group_prefix": "sso:",
        "staff_values": "Site Admins\r\nops\n",
        "superuser_values": "root",
    }
    form = SourceForm(data=form_data(**{**_manual(op), **values}))
    assert form.is_valid(), form.errors
    source = form.save()
    assert source.staff_value_list == ["Site Admins", "ops"]
    assert source.permission_scope_list == ["app:manage_orders", "app:shop.manage_users"]


def _manual(op: FakeOP) -> dict[str, Any]:
    return {
        "issuer": op.issuer,
        "authorization_url": op.url("/authorize"),
        "token_url": op.url("/token"),
        "jwks_url": op.url("/jwks"),
    }


def test_a_whole_sign_in_takes_the_same_number_of_queries_for_5_and_50_permissions(
    db, op, sign_in, bulk_permissions
):
    make_source(op, "honest", permission_prefix="app:")
    source_cache.by_slug("honest")  # load the process's source cache before counting
    counts = {}
    for login, n in (("alice", 5), ("bob", 50)):
        grant(op, "openid " + " ".join(f"app:bulk_{i:02d}" for i in range(n)))
        with CaptureQueriesContext(connection) as queries:
            signed_in(sign_in, user=login, browser=Client())  # same session state for both
        counts[n] = len(queries)
        assert len(direct_permissions(login)) == n
    assert counts[5] == counts[50]
