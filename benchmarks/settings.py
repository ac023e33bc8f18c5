"""Settings for the login benchmark: django_sso, django-allauth and mozilla-django-oidc side by side.

All three sign in against the same local OpenID Provider, whose issuer ``benchmarks.login`` puts
in ``BENCH_OP_ISSUER`` before Django starts. ``DATABASE_URL`` / ``CACHE_URL`` /
``SESSION_ENGINE`` are honoured (django-environ); the defaults are a SQLite file in a temporary
directory (``BENCH_SQLITE_PATH``) and the local-memory cache. The benchmark always runs on its own
freshly created database (``BENCH_DB_NAME``, default ``django_sso_bench``), never on the one the
URL names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import environ

from benchmarks import ALLAUTH_CLIENT, MOZILLA_CLIENT

env = environ.Env()

OP_ISSUER = os.environ.get("BENCH_OP_ISSUER", "http://127.0.0.1:9000").rstrip("/")

SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "django_sso",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "mozilla_django_oidc",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "benchmarks.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_sqlite_path = os.environ.get("BENCH_SQLITE_PATH") or str(
    Path(tempfile.gettempdir()) / "django_sso_bench.sqlite3"
)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{_sqlite_path}")}
# Persistent connections, as in production: the test client's per-request connection cleanup
# must not add connects to some sign-ins and not others.
DATABASES["default"]["CONN_MAX_AGE"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": _sqlite_path}
    # Several sign-ins write at once: take the write lock at BEGIN (no deadlocked upgrades) and
    # let readers run beside the writer (WAL). benchmarks.login does not count the BEGIN.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL",
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("BENCH_DB_NAME", "django_sso_bench")}
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
CACHES["default"]["KEY_PREFIX"] = "django_sso_bench"
SESSION_ENGINE = env("SESSION_ENGINE", default="django.contrib.sessions.backends.db")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# SSOBackend first: the other two never claim a django_sso callback (mozilla's would try to
# redeem any ?code= it sees), and allauth's needs a password.
AUTHENTICATION_BACKENDS = [
    "django_sso.backends.SSOBackend",
    "mozilla_django_oidc.auth.OIDCAuthenticationBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "/"
LOGIN_REDIRECT_URL = "/signed-in/"
LOGOUT_REDIRECT_URL = "/"
SITE_ID = 1

# ---- django_sso: its Source is created through discovery by benchmarks.login.
DJANGO_SSO_REDIRECT_URI_BASE = "http://testserver"
DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]

# ---- django-allauth: the openid_connect provider from settings (no SocialApp row), PKCE on,
# UserInfo fetched (its default), new users created without a signup form.
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "APPS": [
            {
                "provider_id": "local",
                "name": "Local",
                "client_id": ALLAUTH_CLIENT[0],
                "secret": ALLAUTH_CLIENT[1],
                "settings": {
                    "server_url": OP_ISSUER,
                    "token_auth_method": "client_secret_basic",
                    "oauth_pkce_enabled": True,
                    "fetch_userinfo": True,
                },
            }
        ]
    }
}

# ---- mozilla-django-oidc: endpoints are oidc-provider's default routes; benchmarks.login
# checks them against the discovery document before it starts.
OIDC_RP_CLIENT_ID = MOZILLA_CLIENT[0]
OIDC_RP_CLIENT_SECRET = MOZILLA_CLIENT[1]
OIDC_OP_AUTHORIZATION_ENDPOINT = f"{OP_ISSUER}/auth"
OIDC_OP_TOKEN_ENDPOINT = f"{OP_ISSUER}/token"
OIDC_OP_USER_ENDPOINT = f"{OP_ISSUER}/me"
OIDC_OP_JWKS_ENDPOINT = f"{OP_ISSUER}/jwks"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_TOKEN_USE_BASIC_AUTH = True
OIDC_TIMEOUT = (5, 10)
OIDC_STORE_ACCESS_TOKEN = False
OIDC_STORE_ID_TOKEN = False
OIDC_CREATE_USER = True
LOGIN_REDIRECT_URL_FAILURE = "/sign-in-failed/"
