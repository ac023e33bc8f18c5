"""django_sso.sessions: which sessions a sign-in opened, and ending them with every session engine."""

from __future__ import annotations

from importlib import import_module
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from django_sso import sessions
from django_sso.models import Identity, SSOSession, TokenSet
from django_sso.sessions import SIGNED_COOKIES
from tests.conftest import make_source

ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
]


def session_exists(key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


def signed_in(browser: Client) -> bool:
    return browser.get("/whoami/").json()["authenticated"]


def test_a_sign_in_records_its_session(client, op, source, sign_in):
    op.scenario["id_token"] = {"sid": "op-session-1"}
    sign_in()
    record = SSOSession.objects.get()
    assert record.session_key == client.session.session_key
    assert record.sid == "op-session-1"
    assert record.id_token.count(".") == 2
    assert record.identity == Identity.objects.get()
    assert client.session[sessions.SESSION_KEY] == {"identity": record.identity.pk, "record": record.pk}
    with connection.cursor() as cursor:
        cursor.execute("SELECT session_key, id_token FROM django_sso_ssosession")
        raw_key, raw_id_token = cursor.fetchone()
    # The session key is a credential: encrypted at rest like the tokens, and not in __str__.
    assert raw_key.startswith("fernet:") and record.session_key not in raw_key
    assert raw_id_token.startswith("fernet:")
    assert record.session_key not in str(record)


def test_an_overlong_or_odd_sid_is_not_kept(client, op, source, sign_in):
    op.scenario["id_token"] = {"sid": ["not", "a", "string"]}
    sign_in()
    assert SSOSession.objects.get().sid == ""


@pytest.mark.parametrize("engine", ENGINES)
def test_end_ends_the_session_in_every_engine(settings, client, op, source, sign_in, engine):
    settings.SESSION_ENGINE = engine
    other = Client()
    sign_in()
    sign_in(browser=other)
    assert SSOSession.objects.count() == 2
    first, second = SSOSession.objects.order_by("created_at")
    assert sessions.end([first]) == 1
    assert not session_exists(first.session_key)
    assert session_exists(second.session_key)
    assert not signed_in(client)
    assert signed_in(other)
    assert list(SSOSession.objects.all()) == [second]


def test_signed_cookie_sessions_are_not_recorded(settings, client, source, sign_in):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    sign_in()
    assert signed_in(client)
    assert not SSOSession.objects.exists()
    assert "record" not in client.session[sessions.SESSION_KEY]


def test_a_new_sign_in_in_the_same_browser_replaces_the_record(client, source, sign_in):
    sign_in()
    first = SSOSession.objects.get()
    sign_in()
    second = SSOSession.objects.get()
    assert second.pk != first.pk
    assert second.session_key == client.session.session_key


def test_records_of_expired_sessions_are_cleared_by_the_command(db, op, sign_in):
    make_source(op, "honest", keep_refresh_token=True)
    sign_in()
    sign_in(browser=Client(), user="bob")
    gone = SSOSession.objects.get(identity__subject="alice-sub")
    import_module(settings.SESSION_ENGINE).SessionStore(session_key=gone.session_key).delete()
    out = StringIO()
    call_command("sso_clearsessions", stdout=out)
    assert out.getvalue().strip() == "cleared 1 stale session records"
    assert list(SSOSession.objects.values_list("identity__subject", flat=True)) == ["bob-sub"]
    # alice has no session left and no offline_access: her tokens went with the record.
    assert list(TokenSet.objects.values_list("identity__subject", flat=True)) == ["bob-sub"]


def test_signing_out_forgets_the_record(client, source, sign_in):
    sign_in()
    assert client.post("/sso/logout/").status_code == 303
    assert not SSOSession.objects.exists()


@pytest.mark.parametrize(
    ("scopes", "kept"),
    [("openid email profile", False), ("openid email profile offline_access", True)],
)
def test_the_last_sign_out_forgets_tokens_unless_offline(db, op, client, sign_in, scopes, kept):
    make_source(op, "honest", keep_refresh_token=True, scopes=scopes)
    other = Client()
    sign_in()
    sign_in(browser=other)
    client.post("/sso/logout/")
    assert TokenSet.objects.exists()  # the other browser's session still uses them
    other.post("/sso/logout/")
    assert TokenSet.objects.exists() is kept


def test_a_password_sign_out_of_another_user_touches_nothing(client, source, sign_in, django_user_model):
    sign_in()
    django_user_model.objects.create_user("dora", password="pw")
    other = Client()
    other.login(username="dora", password="pw")
    other.post("/sso/logout/")
    assert SSOSession.objects.count() == 1
    assert signed_in(client)


def test_current_is_none_without_a_sign_in(rf: Any, db: Any) -> None:
    request = rf.get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    assert sessions.current(request) is None


def test_signed_cookie_sessions_are_reported_as_unable_to_end(settings):
    from django.core.checks import run_checks

    settings.SESSION_ENGINE = SIGNED_COOKIES
    (warning,) = [m for m in run_checks(tags=["django_sso"]) if m.id == "django_sso.W002"]
    assert "back-channel logout" in warning.msg
