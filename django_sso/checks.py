"""System checks: ``manage.py check`` says what would break sign-in before a user finds out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, router

from django_sso.app_settings import MAX_LEEWAY_SECONDS, app_settings
from django_sso.internal.flow import STORES

BACKEND = "django_sso.backends.SSOBackend"
REVALIDATION_MIDDLEWARE = "django_sso.session_middleware.SessionRevalidationMiddleware"
BEARER_MIDDLEWARE = "django_sso.middleware.BearerTokenMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


def _has_secret_key() -> bool:
    # django.conf raises ImproperlyConfigured when an empty SECRET_KEY is read: report E002
    # instead of crashing ``manage.py check``.
    try:
        return bool(settings.SECRET_KEY)
    except ImproperlyConfigured:
        return False


@register("django_sso")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Return the configuration problems found."""
    problems: list[Any] = []
    if BACKEND not in settings.AUTHENTICATION_BACKENDS:
        problems.append(
            Error(
                f"{BACKEND} is not in AUTHENTICATION_BACKENDS.",
                hint=f'Add "{BACKEND}" to AUTHENTICATION_BACKENDS.',
                id="django_sso.E001",
            )
        )
    if not app_settings.ENCRYPTION_KEYS and not _has_secret_key():
        problems.append(
            Error(
                "No key is available to encrypt client secrets.",
                hint="Set SECRET_KEY or DJANGO_SSO_ENCRYPTION_KEYS.",
                id="django_sso.E002",
            )
        )
    base = app_settings.REDIRECT_URI_BASE
    if not base:
        problems.append(
            Error(
                "DJANGO_SSO_REDIRECT_URI_BASE is not set.",
                hint='Set it to the site\'s public origin, e.g. "https://app.example.com"; '
                "callback URLs are never built from request headers.",
                id="django_sso.E003",
            )
        )
    elif not base.startswith("https://") and not settings.DEBUG:
        problems.append(
            Warning(
                "DJANGO_SSO_REDIRECT_URI_BASE is not https.",
                hint="Providers send authorization codes to this origin; use https in production.",
                id="django_sso.W001",
            )
        )
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies":
        problems.append(
            Warning(
                "Signed-cookie sessions put the sign-in flow's PKCE verifier and nonce in the browser, "
                "and cannot be ended from the server: back-channel logout and ending sessions in the "
                "admin do nothing.",
                hint="Use database, cache or cached_db sessions.",
                id="django_sso.W002",
            )
        )
    if str(getattr(settings, "SESSION_COOKIE_SAMESITE", "Lax")).lower() == "strict":
        problems.append(
            Warning(
                "SESSION_COOKIE_SAMESITE = 'Strict' drops the session cookie on the provider's "
                "redirect back, so every callback fails with 'session expired'.",
                hint="Use 'Lax' (Django's default).",
                id="django_sso.W003",
            )
        )
    if int(getattr(settings, "DJANGO_SSO_LEEWAY", 60)) > MAX_LEEWAY_SECONDS:
        problems.append(
            Warning(
                f"DJANGO_SSO_LEEWAY is above {MAX_LEEWAY_SECONDS} s and is capped there.",
                id="django_sso.W004",
            )
        )
    problems.extend(_flow_store_problems())
    if "django_sso" in settings.INSTALLED_APPS and "django.contrib.sessions" not in settings.INSTALLED_APPS:
        problems.append(Error("django.contrib.sessions is required.", id="django_sso.E004"))
    middleware = list(settings.MIDDLEWARE)
    if REVALIDATION_MIDDLEWARE in middleware and (
        AUTH_MIDDLEWARE not in middleware
        or middleware.index(AUTH_MIDDLEWARE) > middleware.index(REVALIDATION_MIDDLEWARE)
    ):
        problems.append(
            Error(
                "SessionRevalidationMiddleware needs request.user.",
                hint=f"Put {REVALIDATION_MIDDLEWARE} after {AUTH_MIDDLEWARE}.",
                id="django_sso.E005",
            )
        )
    if BEARER_MIDDLEWARE in middleware and (
        AUTH_MIDDLEWARE not in middleware
        or middleware.index(AUTH_MIDDLEWARE) > middleware.index(BEARER_MIDDLEWARE)
    ):
        problems.append(
            Error(
                f"{BEARER_MIDDLEWARE} must come after {AUTH_MIDDLEWARE}, which would replace its user.",
                hint="Put the bearer middleware after AuthenticationMiddleware.",
                id="django_sso.E006",
            )
        )
    return problems


LOCMEM_CACHE = "django.core.cache.backends.locmem.LocMemCache"
DUMMY_CACHE = "django.core.cache.backends.dummy.DummyCache"


def _flow_store_problems() -> list[Any]:
    store = app_settings.FLOW_STORE
    if store not in STORES:
        return [
            Error(
                f"DJANGO_SSO_FLOW_STORE is {store!r}.",
                hint=f"Use one of {', '.join(repr(s) for s in STORES)}.",
                id="django_sso.E007",
            )
        ]
    if store != "cache":
        return []
    alias = app_settings.CACHE_ALIAS
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend == DUMMY_CACHE:
        problem = "a DummyCache, keeps nothing: every callback fails with 'session expired'."
    elif backend == LOCMEM_CACHE and not settings.DEBUG:
        problem = "a LocMemCache, lives in one process: flows started in one are not found in another."
    else:
        return []
    return [
        Warning(
            f"DJANGO_SSO_FLOW_STORE = 'cache' uses the {alias!r} cache, which, {problem}",
            hint="Name a cache all processes share (Redis, Memcached) in DJANGO_SSO_CACHE_ALIAS, "
            "or use DJANGO_SSO_FLOW_STORE = 'session'.",
            id="django_sso.W007",
        )
    ]


def audience_clashes(sources: Iterable[Any]) -> dict[str, list[tuple[str, str]]]:
    """Return, by source slug, its API audiences that equal a source's client ID, with that source.

    RS-02: an ID token's ``aud`` is the client ID, so such an audience lets the API see ID tokens
    carrying its audience; only their ID-token claims and ``typ`` still tell them apart.
    """
    sources = list(sources)
    client_ids = {source.client_id: source.slug for source in sources if source.client_id}
    clashes: dict[str, list[tuple[str, str]]] = {}
    for source in sources:
        for audience in source.bearer_audience_list:
            if audience in client_ids:
                clashes.setdefault(source.slug, []).append((audience, client_ids[audience]))
    return clashes


def audience_clash_message(clashes: list[tuple[str, str]]) -> str:
    """Return the operator's warning for :func:`audience_clashes`' findings about one source."""
    named = ", ".join(f"{audience!r} (the client ID of {slug!r})" for audience, slug in clashes)
    return (
        f"API audience {named}: ID tokens for that client carry it too. Register the API "
        "under its own identifier (RFC 8725 3.12)."
    )


@register("django_sso", Tags.database)
def check_sources(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Return problems in the stored sources (run by ``migrate`` and ``check --database``)."""
    if databases is None or app_settings.ALLOW_SUPERUSER_MAPPING:
        return []
    from django_sso.models import Source

    problems: list[Any] = []
    for alias in databases:
        if not router.allow_migrate_model(alias, Source):
            continue
        try:
            named = Source.objects.using(alias).exclude(superuser_values="")
            slugs = list(named.values_list("slug", flat=True))
        except DatabaseError:
            continue  # not migrated yet
        for slug in slugs:
            problems.append(
                Warning(
                    f"The source {slug!r} names superuser values, but superuser mapping is off: "
                    "they are ignored.",
                    hint="Set DJANGO_SSO_ALLOW_SUPERUSER_MAPPING = True to use them, or clear them.",
                    obj=slug,
                    id="django_sso.W005",
                )
            )
    return problems


@register("django_sso", Tags.database)
def check_bearer_audiences(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Warn about API audiences that equal a client ID (RS-02; ``migrate``, ``check --database``)."""
    if databases is None:
        return []
    from django_sso.models import Source

    problems: list[Any] = []
    for alias in databases:
        if not router.allow_migrate_model(alias, Source):
            continue
        try:
            clashes = audience_clashes(
                Source.objects.using(alias).only("slug", "client_id", "bearer_audiences")
            )
        except DatabaseError:
            continue  # not migrated yet
        for slug, found in clashes.items():
            problems.append(
                Warning(
                    f"Source {slug!r}: {audience_clash_message(found)}",
                    hint="Give the API an audience of its own at the provider and in the source.",
                    obj=slug,
                    id="django_sso.W006",
                )
            )
    return problems
