"""The migrations match the models (tox runs the same check)."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command


def test_makemigrations_check_is_clean(db):
    out = StringIO()
    # --check exits with SystemExit(1) when a model change lacks a migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    assert "No changes detected" in out.getvalue()


def test_makemigrations_check_is_clean_for_django_sso(db):
    out = StringIO()
    call_command("makemigrations", "django_sso", "--check", "--dry-run", stdout=out, stderr=out)
    assert "No changes detected in app 'django_sso'" in out.getvalue()
