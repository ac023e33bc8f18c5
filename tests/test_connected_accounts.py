"""/sso/accounts/: a user's linked sources; unlinking one, never the last way to sign in."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_sso import sessions
from django_sso.models import Identity, SSOSession, TokenSet
from tests.conftest import make_source

ACCOUNTS = "/sso/accounts/"


@pytest.fixture
def two_sources(db, op, attacker_op):
    return make_source(op, "honest", keep_refresh_token=True), make_source(attacker_op, "attacker")


def test_the_page_needs_a_signed_in_user(client, db):
    response = client.get(ACCOUNTS)
    assert response.status_code == 302
    assert response["Location"].startswith("/?next=")


def test_the_page_lists_the_linked_sources_with_an_unlink_form(client, source, sign_in):
    sign_in()
    page = client.get(ACCOUNTS)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-sso-source="honest"' in html
    assert re.search(r'name="csrfmiddlewaretoken"', html)
    assert f'name="identity" value="{Identity.objects.get().pk}"' in html
    assert "no-store" in page["Cache-Control"]


def test_the_only_way_to_sign_in_is_never_unlinked(client, source, sign_in):
    sign_in()
    identity = Identity.objects.get()
    response = client.post(ACCOUNTS, {"identity": identity.pk})
    assert response.status_code == 400
    assert "only way to sign in" in response.content.decode()
    assert Identity.objects.filter(pk=identity.pk).exists()


def test_an_identity_at_a_disabled_source_is_no_way_to_sign_in(client, op, attacker_op, two_sources, sign_in):
    honest, attacker = two_sources
    sign_in()
    user = get_user_model().objects.get()
    Identity.objects.create(source=attacker, subject="alice-elsewhere", user=user)
    attacker.enabled = False
    attacker.save()
    honest_identity = Identity.objects.get(source=honest)
    assert client.post(ACCOUNTS, {"identity": honest_identity.pk}).status_code == 400


def test_another_enabled_identity_allows_unlinking_with_tokens_and_records(client, op, two_sources, sign_in):
    honest, attacker = two_sources
    sign_in()
    user = get_user_model().objects.get()
    Identity.objects.create(source=attacker, subject="alice-elsewhere", user=user)
    honest_identity = Identity.objects.get(source=honest)
    assert TokenSet.objects.filter(identity=honest_identity).exists()
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    assert strict.post(ACCOUNTS, {"identity": honest_identity.pk}).status_code == 403  # CSRF
    response = client.post(ACCOUNTS, {"identity": honest_identity.pk})
    assert response.status_code == 303
    assert response["Location"] == ACCOUNTS
    assert list(user.sso_identities.values_list("source__slug", flat=True)) == ["attacker"]
    assert not TokenSet.objects.exists()
    assert not SSOSession.objects.exists()
    # Still signed in, but no longer as a session of the unlinked identity.
    assert client.get("/whoami/").json()["authenticated"] is True
    assert sessions.SESSION_KEY not in client.session


def test_a_usable_password_allows_unlinking_the_last_identity(client, source, sign_in):
    sign_in()
    user = get_user_model().objects.get()
    user.set_password("a-local-password")
    user.save()
    client.force_login(user)  # the password change ended the session
    assert client.post(ACCOUNTS, {"identity": Identity.objects.get().pk}).status_code == 303
    assert not Identity.objects.exists()


@pytest.mark.parametrize("value", ["999999", "abc", ""])
def test_someone_elses_or_a_bogus_identity_is_refused(client, op, source, sign_in, value, django_user_model):
    sign_in(browser=Client(), user="bob")
    bob_identity = Identity.objects.get()
    sign_in()
    user = get_user_model().objects.get(username="alice")
    user.set_password("pw")
    user.save()
    client.force_login(user)
    for candidate in (value, str(bob_identity.pk)):
        assert client.post(ACCOUNTS, {"identity": candidate}).status_code == 400
    assert Identity.objects.filter(pk=bob_identity.pk).exists()
