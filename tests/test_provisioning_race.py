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
    creations = 0

    def create_user(self, source: Any, claims: dict[str, Any]) -> Any:
        type(self).creations += 1
        return super().create_user(source, claims)

    def first_sign_in(self, request: Any, source: Any, claims: dict[str, Any]) -> Identity:
        if not self.careful_usernames:  # the first attempt only; retries run after the race
            self.barrier.wait(timeout=10)
        return super().first_sign_in(request, source, claims)


def test_concurrent_first_sign_ins_create_one_user(op):
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL=postgres://..."
    source = make_source(op, "honest")
    workers = 4
    RacingBackend.barrier = threading.Barrier(workers)
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
        thread.join(timeout=30)

    # Every worker tried to create the user inside its transaction: the race really happened,
    # and the losers' work was rolled back.
    assert RacingBackend.creations == workers
    assert errors == []
    assert len(results) == workers
    assert len(set(results)) == 1
    assert get_user_model().objects.count() == 1
    assert Identity.objects.filter(source=source, subject="race-sub").count() == 1
    assert get_user_model().objects.get().username == "racer"
