"""System checks: each problem is reported when misconfigured, and only then."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_sso.checks import BACKEND


@pytest.fixture(autouse=True)
def _production_like(settings):
    """Start every test from a configuration that passes (the test settings use http callbacks)."""
    settings.DJANGO_SSO_REDIRECT_URI_BASE = "https://app.example.com"
    settings.DEBUG = False


def check_ids() -> list[str]:
    return [message.id for message in run_checks(tags=["django_sso"])]


def test_the_test_settings_pass_every_check():
    assert check_ids() == []


MISCONFIGURATIONS: dict[str, dict[str, Any]] = {
    "django_sso.E001": {"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]},
    "django_sso.E002": {"SECRET_KEY": "", "DJANGO_SSO_ENCRYPTION_KEYS": []},
    "django_sso.E003": {"DJANGO_SSO_REDIRECT_URI_BASE": None},
    "django_sso.W002": {"SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies"},
    "django_sso.W003": {"SESSION_COOKIE_SAMESITE": "Strict"},
}


@pytest.mark.parametrize("expected", MISCONFIGURATIONS)
def test_each_misconfiguration_is_reported_alone(settings, expected):
    for name, value in MISCONFIGURATIONS[expected].items():
        setattr(settings, name, value)
    assert check_ids() == [expected]


def test_every_reported_problem_has_a_hint(settings):
    for overrides in MISCONFIGURATIONS.values():
        for name, value in overrides.items():
            setattr(settings, name, value)
    messages = run_checks(tags=["django_sso"])
    assert {m.id for m in messages} == set(MISCONFIGURATIONS)
    assert all(m.hint for m in messages)


def test_e001_is_quiet_with_the_backend_anywhere_in_the_list(settings):
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", BACKEND]
    assert check_ids() == []


def test_e002_is_quiet_with_explicit_encryption_keys(settings):
    settings.SECRET_KEY = ""
    settings.DJANGO_SSO_ENCRYPTION_KEYS = ["an-explicit-encryption-key-0123456789"]
    assert check_ids() == []


def test_e003_is_quiet_with_a_redirect_uri_base(settings):
    settings.DJANGO_SSO_REDIRECT_URI_BASE = "https://app.example.com"
    assert check_ids() == []


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
    ],
)
def test_w002_is_quiet_with_server_side_sessions(settings, engine):
    settings.SESSION_ENGINE = engine
    assert check_ids() == []


@pytest.mark.parametrize("samesite", ["Strict", "strict", "STRICT"])
def test_w003_reports_strict_in_any_case(settings, samesite):
    settings.SESSION_COOKIE_SAMESITE = samesite
    assert check_ids() == ["django_sso.W003"]


@pytest.mark.parametrize("samesite", ["Lax", "None", None, False])
def test_w003_is_quiet_for_other_samesite_values(settings, samesite):
    settings.SESSION_COOKIE_SAMESITE = samesite
    assert check_ids() == []


def test_w001_reports_a_plain_http_redirect_uri_base_outside_debug(settings):
    settings.DJANGO_SSO_REDIRECT_URI_BASE = "http://app.example.com"
    settings.DEBUG = False
    assert check_ids() == ["django_sso.W001"]
    settings.DEBUG = True
    assert check_ids() == []


def test_manage_py_check_reports_e002_instead_of_crashing_on_an_empty_secret_key(settings):
    settings.SECRET_KEY = ""
    settings.DJANGO_SSO_ENCRYPTION_KEYS = []
    with pytest.raises(SystemCheckError, match=r"django_sso\.E002"):
        call_command("check", tags=["django_sso"])
