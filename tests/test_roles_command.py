"""``manage.py sso_source``: the role mapping options, and a one-line reason for each mistake."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from django_sso.models import GroupMapping, Source
from tests.test_command import command_error, create_args, sso_source


def mappings(source: Source) -> set[tuple[str, str]]:
    return set(GroupMapping.objects.filter(source=source).values_list("value", "group__name"))


def test_create_with_every_role_mapping_option(db, op):
    out = sso_source(
        *create_args(op),
        "--permission-prefix",
        "app:",
        "--permission-claim",
        "realm_access.roles",
        "--permission-scopes",
        "app:manage_orders app:shop.manage_users",
        "--permission-app-labels",
        "shop",
        "--access-token-audience",
        "https://api.example.test",
        "--groups-claim",
        "groups",
        "--map-group",
        "shop-staff=Shop orders",
        "--map-group",
        "Domain Admins=Admins",
        "--map-group",
        "shop-staff=Staff room",
        "--mirror-groups",
        "sso:",
        "--staff-value",
        "Domain Admins",
        "--staff-value",
        "ops",
        "--superuser-value",
        "root",
    )
    assert out.startswith("saved honest:")
    source = Source.objects.get()
    assert source.permission_prefix == "app:"
    assert source.permission_claim == "realm_access.roles"
    assert source.permission_scope_list == ["app:manage_orders", "app:shop.manage_users"]
    assert source.permission_app_label_list == ["shop"]
    assert source.access_token_audience == "https://api.example.test"
    assert source.groups_claim == "groups"
    assert (source.mirror_groups, source.mirror_group_prefix) == (True, "sso:")
    assert source.staff_value_list == ["Domain Admins", "ops"]
    assert source.superuser_value_list == ["root"]
    assert mappings(source) == {
        ("shop-staff", "Shop orders"),
        ("shop-staff", "Staff room"),
        ("Domain Admins", "Admins"),
    }
    assert set(Group.objects.values_list("name", flat=True)) == {"Shop orders", "Staff room", "Admins"}


def test_role_mapping_is_off_by_default(db, op):
    sso_source(*create_args(op))
    source = Source.objects.get()
    assert (source.permission_prefix, source.groups_claim, source.staff_values) == ("", "", "")
    assert source.mirror_groups is False
    assert mappings(source) == set()


def test_map_group_replaces_the_mappings_and_reuses_groups(db, op):
    sso_source(*create_args(op), "--groups-claim", "groups", "--map-group", "a=One", "--map-group", "b=Two")
    one = Group.objects.get(name="One")
    sso_source("update", "honest", "--map-group", "c=One")
    source = Source.objects.get()
    assert mappings(source) == {("c", "One")}
    assert GroupMapping.objects.get().group == one
    sso_source("update", "honest", "--name", "Renamed")
    assert mappings(source) == {("c", "One")}  # untouched without --map-group
    sso_source("update", "honest", "--no-map-groups")
    assert mappings(source) == set()
    assert Group.objects.filter(name__in=["One", "Two"]).count() == 2  # groups are never deleted


def test_update_turns_things_off(db, op):
    sso_source(
        *create_args(op),
        "--permission-prefix",
        "app:",
        "--mirror-groups",
        "sso:",
        "--staff-value",
        "admins",
    )
    sso_source("update", "honest", "--permission-prefix", "", "--no-mirror-groups", "--staff-value", "")
    source = Source.objects.get()
    assert (source.permission_prefix, source.mirror_groups, source.staff_values) == ("", False, "")
    assert source.mirror_group_prefix == "sso:"
    sso_source("update", "honest", "--mirror-groups")  # the stored prefix is kept
    assert Source.objects.get().mirror_groups is True


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--map-group", "no-equals-sign"], "--map-group takes VALUE=GROUP, got 'no-equals-sign'"),
        (["--map-group", "=Group"], "--map-group takes VALUE=GROUP"),
        (["--map-group", "value="], "--map-group takes VALUE=GROUP"),
        (["--map-group", "v=" + "g" * 151], "the group name"),
        (["--mirror-groups"], "mirror_group_prefix: Mirroring groups needs a prefix"),
        (["--permission-scopes", "app:x"], "permission_scopes: Permission scopes need a permission prefix"),
        (["--permission-prefix", "app:", "--permission-scopes", "x"], "must start with the prefix"),
        (["--permission-app-labels", "nosuchapp"], "permission_app_labels: No installed app"),
        (["--groups-claim", "my groups"], "groups_claim: No spaces"),
    ],
)
def test_each_mistake_is_a_one_line_error_and_saves_nothing(db, op, args, reason):
    assert reason in command_error(*create_args(op), *args)
    assert not Source.objects.exists()
    assert not Group.objects.exists()


def test_a_failed_update_keeps_the_old_mappings(db, op):
    sso_source(*create_args(op), "--map-group", "a=One")
    command_error("update", "honest", "--map-group", "b=Two", "--permission-scopes", "app:x")
    assert mappings(Source.objects.get()) == {("a", "One")}
    assert not Group.objects.filter(name="Two").exists()
