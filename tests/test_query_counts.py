"""The callback's database queries, stated and held: a bounded number, none per permission.

Counted without the SAVEPOINT/RELEASE pairs the test transaction adds around atomic blocks
(in autocommit production the outer transaction is BEGIN/COMMIT, not a statement).
Database sessions: 12 for a first sign-in, 9 for a returning one, of which 6 are Django's
session and login work (load, rotate: read, delete, key check, insert, then last_login and the
save) and 1 the record of the new session that back-channel logout needs (django_sso.sessions).
Cache sessions: 6 and 3.

With the cache flow store (``DJANGO_SSO_FLOW_STORE = "cache"``) the browser arrives without a
session: the 3 statements spent on the pre-login session (loading it, the login rotation reading
and deleting it) are gone. Database sessions: 9 and 6, of which 4 are Django's login work (a free
key checked, the new session inserted, last_login, the save). Cache sessions: 6 and 3, as with the
session flow store (no session statement is SQL then).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_sso.internal import source_cache

DB_SESSIONS = "django.contrib.sessions.backends.db"
CACHE_SESSIONS = "django.contrib.sessions.backends.cache"


def _statements(queries: list[dict[str, str]]) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def _callback_queries(op, user: str = "alice") -> list[str]:
    browser = Client()
    start = browser.post("/sso/honest/login/", {})
    callback = urlsplit(op.authorize(start["Location"], user=user))
    with CaptureQueriesContext(connection) as queries:
        response = browser.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 303, response.content
    return _statements(queries.captured_queries)


@pytest.mark.parametrize(
    ("engine", "flow_store", "first", "returning"),
    [
        (DB_SESSIONS, "session", 12, 9),
        (CACHE_SESSIONS, "session", 6, 3),
        (DB_SESSIONS, "cache", 9, 6),
        (CACHE_SESSIONS, "cache", 6, 3),
    ],
)
def test_callback_queries_for_first_and_returning_sign_ins(
    settings, op, source, engine, flow_store, first, returning
):
    settings.SESSION_ENGINE = engine
    settings.DJANGO_SSO_FLOW_STORE = flow_store
    source_cache.by_slug("honest")  # loaded once per process, then every few seconds
    first_queries = _callback_queries(op)
    returning_queries = _callback_queries(op)
    assert len(first_queries) == first, "\n".join(first_queries)
    assert len(returning_queries) == returning, "\n".join(returning_queries)
    assert not any("django_sso_source" in sql for sql in first_queries + returning_queries)
    # Role mapping: nothing mapped and no grant held (an EXISTS inside the identity query).
    assert not any(sql.startswith('SELECT "django_sso_grant"') for sql in first_queries + returning_queries)
    # Session lifecycle: one INSERT of the session's record, nothing read.
    lifecycle = [sql for sql in first_queries + returning_queries if "django_sso_ssosession" in sql]
    assert [sql.split(" (")[0] for sql in lifecycle] == ['INSERT INTO "django_sso_ssosession"'] * 2


def test_a_source_change_is_seen_at_once_in_this_process(op, source, client):
    assert source_cache.by_slug("honest").enabled is True
    source.enabled = False
    source.save()
    assert client.post("/sso/honest/login/").status_code == 404


def test_another_processs_change_is_seen_after_the_cache_period(settings, op, source, client):
    from django_sso.models import Source

    settings.DJANGO_SSO_SOURCE_CACHE_SECONDS = 0  # as if the period had passed
    assert source_cache.by_slug("honest").enabled is True
    Source.objects.filter(pk=source.pk).update(enabled=False)  # no signal: like another process
    assert client.post("/sso/honest/login/").status_code == 404
