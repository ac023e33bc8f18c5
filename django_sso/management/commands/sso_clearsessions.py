"""``manage.py sso_clearsessions``: forget the records of SSO sessions that have expired.

Run it where you run Django's ``clearsessions`` (cron). Exit code 0; prints how many went.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_sso import sessions


class Command(BaseCommand):
    help = "Delete the records of SSO sessions whose Django session no longer exists."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"cleared {sessions.clear_stale()} stale session records")
