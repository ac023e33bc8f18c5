"""Admin: the Source page's role mapping fieldset and group mapping rows; the user page's grants."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.utils import timezone

from django_sso.admin import GrantInline, _add_grants_to_user_admin
from django_sso.models import Grant, GroupMapping, Source
from tests.conftest import make_source
from tests.test_admin import change_url, form_errors, messages_of
from tests.test_discovery import edit_data
from tests.test_roles import direct_permissions, grant, signed_in

User = get_user_model()


def mapping_rows(*rows: tuple[str, Group]) -> dict[str, Any]:
    data: dict[str, Any] = {"group_mappings-TOTAL_FORMS": str(len(rows))}
    for n, (value, group) in enumerate(rows):
        data[f"group_mappings-{n}-value"] = value
        data[f"group_mappings-{n}-group"] = str(group.pk)
    return data


def test_the_source_page_has_the_role_mapping_fieldset_and_the_mapping_rows(admin_client, op):
    source = make_source(op, "honest")
    page = admin_client.get(change_url(source)).content.decode()
    assert "Role mapping" in page
    for field in ("permission_prefix", "permission_claim", "groups_claim", "mirror_groups", "staff_values"):
        assert f'name="{field}"' in page
    assert 'name="group_mappings-TOTAL_FORMS"' in page


def test_mapping_rows_are_saved_from_the_source_page(admin_client, op):
    source = make_source(op, "honest")
    orders, staff = Group.objects.create(name="Orders"), Group.objects.create(name="Staff")
    data = edit_data(source, groups_claim="groups", **mapping_rows(("shop-staff", orders), ("ops", staff)))
    response = admin_client.post(change_url(source), data)
    assert response.status_code == 302, form_errors(response)
    assert set(GroupMapping.objects.values_list("source__slug", "value", "group__name")) == {
        ("honest", "shop-staff", "Orders"),
        ("honest", "ops", "Staff"),
    }


def test_a_mapping_row_twice_is_refused(admin_client, op):
    source = make_source(op, "honest")
    orders = Group.objects.create(name="Orders")
    data = edit_data(source, **mapping_rows(("a", orders), ("a", orders)))
    response = admin_client.post(change_url(source), data)
    assert response.status_code == 200
    assert not GroupMapping.objects.exists()


def test_saving_superuser_values_while_the_setting_is_off_warns(admin_client, op, settings):
    source = make_source(op, "honest")
    response = admin_client.post(change_url(source), edit_data(source, superuser_values="root"), follow=True)
    assert any("Superuser values are ignored" in m for m in messages_of(response))
    settings.DJANGO_SSO_ALLOW_SUPERUSER_MAPPING = True
    response = admin_client.post(change_url(source), edit_data(source, superuser_values="root"), follow=True)
    assert not any("Superuser values are ignored" in m for m in messages_of(response))


def test_the_user_page_shows_what_each_source_granted_and_when(admin_client, op, sign_in):
    make_source(op, "honest", permission_prefix="app:", groups_claim="groups", staff_values="admins")
    GroupMapping.objects.create(
        source=Source.objects.get(), value="admins", group=Group.objects.create(name="Ops")
    )
    op.users["alice"]["groups"] = ["admins"]
    grant(op, "openid app:manage_orders")
    alice = signed_in(sign_in)
    admin_client.force_login(User.objects.get(username="admin"))
    response = admin_client.get(f"/admin/auth/user/{alice.pk}/change/")
    page = response.content.decode()
    assert "Granted by single sign-on" in page
    for shown in ("shop.manage_orders", "Ops", "staff status", "Honest"):
        assert shown in page
    stamp = Grant.objects.filter(kind="permission").get().granted_at
    assert stamp.strftime("%Y") in page
    # Read-only: no inputs for the rows, no "add another"; a row may be deleted.
    assert 'name="sso_grants-0-kind"' not in page
    assert 'name="sso_grants-0-DELETE"' in page
    assert "Add another" not in page.split("Granted by single sign-on", 1)[1].split("</fieldset>", 1)[0]


def test_the_grants_inline_joins_django_user_admin_only():
    site = admin.AdminSite(name="plain")
    site.register(User, UserAdmin)
    _add_grants_to_user_admin(site)
    assert GrantInline in site._registry[User].inlines

    class SiteUserAdmin(UserAdmin):
        pass

    custom = admin.AdminSite(name="custom")
    custom.register(User, SiteUserAdmin)
    _add_grants_to_user_admin(custom)
    assert type(custom._registry[User]) is SiteUserAdmin
    assert GrantInline not in custom._registry[User].inlines
    assert GrantInline in admin.site._registry[User].inlines  # the project's own admin


def user_change_data(user: Any, grants: list[Grant], delete: Grant) -> dict[str, Any]:
    """The user change form as a browser sends it back, with ``delete`` ticked in the grants."""
    joined = timezone.localtime(user.date_joined)
    data: dict[str, Any] = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "user_permissions": [str(pk) for pk in user.user_permissions.values_list("pk", flat=True)],
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "sso_grants-TOTAL_FORMS": str(len(grants)),
        "sso_grants-INITIAL_FORMS": str(len(grants)),
        "sso_grants-MIN_NUM_FORMS": "0",
        "sso_grants-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(grants):
        data[f"sso_grants-{n}-id"] = str(row.pk)
        data[f"sso_grants-{n}-user"] = str(user.pk)
        if row == delete:
            data[f"sso_grants-{n}-DELETE"] = "on"
    return data


def test_deleting_a_grant_row_on_the_user_page_makes_it_a_hand_grant(admin_client, op, sign_in):
    make_source(op, "honest", permission_prefix="app:")
    grant(op, "openid app:manage_orders app:manage_users")
    alice = signed_in(sign_in)
    admin_client.force_login(User.objects.get(username="admin"))
    rows = list(Grant.objects.filter(user=alice).order_by("pk"))
    orders = next(row for row in rows if row.permission.codename == "manage_orders")
    response = admin_client.post(
        f"/admin/auth/user/{alice.pk}/change/", user_change_data(alice, rows, orders)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert {g.target for g in Grant.objects.filter(user=alice)} == {"shop.manage_users"}
    grant(op, "openid")
    signed_in(sign_in)
    assert direct_permissions() == {"shop.manage_orders"}
