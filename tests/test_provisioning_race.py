"""Two first sign-ins of one new person at once (two workers) end with one user and one Identity.

Runs on PostgreSQL only (SQLite serialises writers, so there is no race to show): the suite's
PostgreSQL run selects it, the SQLite run deselects the ``postgres`` marker.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from django_sso.backends import SSOBackend
from django_sso.models import Identity
from tests.conftest import make_source

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CLAIMS = {
    "sub": "race-sub",
    "email": "race@example.com",
    "email_verified": True,
    "preferred_username": "racer",
}


class RacingBackend(SSOBackend):
    """Holds every first sign-in at a barrier until all workers have seen 'no identity yet'."""

    barrier: threading.Barrier
    raced = 0
    count_lock = threading.Lock()

    def first_sign_in(self, request: Any, source: Any, claims: dict[str, Any]) -> Identity:
        if not self.careful_usernames:  # the first attempt only; retries run after the race
            with self.count_lock:
                type(self).raced += 1
            self.barrier.wait(timeout=60)
        return super().first_sign_in(request, source, claims)


def test_concurrent_first_sign_ins_create_one_user(op):
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL=postgres://..."
    source = make_source(op, "honest")
    workers = 4
    RacingBackend.barrier = threading.Barrier(workers)
    RacingBackend.raced = 0
    results: list[Any] = []
    errors: list[BaseException] = []

    def sign_in() -> None:
        try:
            user = RacingBackend().authenticate(None, sso_source=source, sso_claims=dict(CLAIMS))
            results.append(user.pk)
        except BaseException as exc:  # reported below: every worker must succeed
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign_in) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    # Every worker passed "no identity yet" before any could commit: the race really happened.
    # The losers met the winner's rows (unique subject, username or e-mail), rolled back, retried.
    assert RacingBackend.raced == workers
    assert errors == []
    assert len(results) == workers
    assert len(set(results)) == 1
    assert get_user_model().objects.count() == 1
    assert Identity.objects.filter(source=source, subject="race-sub").count() == 1
    assert get_user_model().objects.get().username == "racer"
