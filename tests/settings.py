"""Test settings: the example project, with the database and cache from the environment.

``DATABASE_URL``/``CACHE_URL`` unset: SQLite and the local-memory cache. CI runs the suite again
with PostgreSQL and Redis.
"""

from example_project.settings import *  # noqa: F403

SECRET_KEY = "tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DJANGO_SSO_REDIRECT_URI_BASE = "http://testserver"
DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1", "localhost"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_sso": {"level": "INFO", "propagate": True}},
}
