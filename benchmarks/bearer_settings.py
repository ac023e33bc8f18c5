"""Settings for the bearer benchmark (``benchmarks.bearer``): one lean project, four kinds of views.

Every view sits behind the same middleware (``CommonMiddleware`` only), so the figures differ by
the authentication alone. ``benchmarks.bearer`` sets ``BENCH_OP_ISSUER`` (the local provider) and
``BENCH_SQLITE_PATH`` (a temporary database) before Django starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

OP_ISSUER = os.environ.get("BENCH_OP_ISSUER", "http://127.0.0.1:9000").rstrip("/")
API = "https://api.example.test"
CLIENT = ("bench-api-client", "bench-api-client-secret-0123456789abcdef")

SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_sso",
    "mozilla_django_oidc",
    "example_project.shop",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "benchmarks.bearer_urls"
TEMPLATES: list = []
_sqlite = os.environ.get("BENCH_SQLITE_PATH") or str(
    Path(tempfile.gettempdir()) / "django_sso_bearer.sqlite3"
)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _sqlite,
        "TEST": {"NAME": _sqlite},
        "CONN_MAX_AGE": None,
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUTHENTICATION_BACKENDS = [
    "django_sso.backends.SSOBackend",
    "mozilla_django_oidc.auth.OIDCAuthenticationBackend",
]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

DJANGO_SSO_REDIRECT_URI_BASE = "http://testserver"
DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]

# mozilla-django-oidc: its DRF class sends every token to the UserInfo endpoint.
OIDC_RP_CLIENT_ID, OIDC_RP_CLIENT_SECRET = CLIENT
OIDC_OP_AUTHORIZATION_ENDPOINT = f"{OP_ISSUER}/auth"
OIDC_OP_TOKEN_ENDPOINT = f"{OP_ISSUER}/token"
OIDC_OP_USER_ENDPOINT = f"{OP_ISSUER}/me"
OIDC_OP_JWKS_ENDPOINT = f"{OP_ISSUER}/jwks"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_CREATE_USER = True
