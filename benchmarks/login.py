"""Login benchmark: complete sign-ins against the local OpenID Provider, three libraries side by side.

Run from the repository root (needs node/npm for the provider and the ``bench`` extra)::

    .venv/bin/python -m benchmarks.login                  # SQLite + local-memory cache
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CACHE_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m benchmarks.login              # PostgreSQL + Redis

One provider (``tests/op``, npm ``oidc-provider`` on 127.0.0.1) serves one client per library.
For django_sso, django-allauth's ``openid_connect`` provider and mozilla-django-oidc it runs
``--n`` first sign-ins (people the site has never seen), then ``--n`` returning sign-ins of the
same people, ``--workers`` at a time in threads, bounded by count and by ``--max-seconds`` per
library and phase; each phase runs in ``--rounds`` rounds, the libraries taking turns. A sign-in
is a new browser: the Django test client starts the login (POST for django_sso and allauth, GET
for mozilla), a ``requests.Session`` fills the provider's login form, and the test client follows
the redirect back to the callback. That callback request is timed and its SQL statements and
outbound HTTP calls counted; the whole sign-in is timed too. The first ``--warmup`` sign-ins of
each library (key fetch, imports, template compilation) are left out. Everything runs on a
database created for the run and dropped afterwards: ``BENCH_DB_NAME`` (default
``django_sso_bench``) on the server ``DATABASE_URL`` names, or a temporary SQLite file.

django_sso runs twice, as two rows: with flows in the session (the default) and with
``DJANGO_SSO_FLOW_STORE = "cache"`` (``django_sso_cache`` in ``--libraries``), the same source
and client, its settings in force only during its own batches.

Machines are noisy: compare the ratios of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from tests.support.op_server import OPServer, sign_in_with_requests

MAX_SIGN_INS = 2000
SIGNED_IN_URL = "/signed-in/"


@dataclass(frozen=True)
class Library:
    """How one library is driven: where its sign-in starts and where the provider sends it back."""

    key: str
    label: str
    login_path: str
    login_method: str
    callback_path: str
    client_setting: str
    #: Django settings in force during this library's sign-ins (the libraries take turns).
    settings: tuple[tuple[str, Any], ...] = ()


LIBRARIES = {
    lib.key: lib
    for lib in (
        Library(
            "django_sso", "django_sso", "/sso/local/login/", "post", "/sso/local/callback/", "SSO_CLIENT"
        ),
        # The same source and client, flows in the cache instead of the session (one process: a
        # local-memory cache serves as well as Redis).
        Library(
            "django_sso_cache",
            "django_sso (cache flow store)",
            "/sso/local/login/",
            "post",
            "/sso/local/callback/",
            "SSO_CLIENT",
            (("DJANGO_SSO_FLOW_STORE", "cache"),),
        ),
        Library(
            "allauth",
            "django-allauth openid_connect",
            "/allauth/oidc/local/login/",
            "post",
            "/allauth/oidc/local/login/callback/",
            "ALLAUTH_CLIENT",
        ),
        Library(
            "mozilla",
            "mozilla-django-oidc",
            "/mozilla/authenticate/",
            "get",
            "/mozilla/callback/",
            "MOZILLA_CLIENT",
        ),
    )
}


@dataclass
class Sample:
    """One measured sign-in."""

    login: str
    callback_seconds: float
    callback_cpu_seconds: float
    total_seconds: float
    statements: list[str]
    http_paths: list[str]


@dataclass
class Batch:
    """One library's batch of sign-ins of one kind (first or returning)."""

    library: Library
    phase: str
    planned: int
    wall_seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.samples) / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def query_counts(self) -> list[int]:
        return [len(s.statements) for s in self.samples]


# --------------------------------------------------------------------------- instruments

_recording = threading.local()


def _install_http_recorder() -> None:
    """Record the path of every outbound request made while a thread is recording.

    All three libraries (and Authlib under django_sso) send through ``requests``' HTTPAdapter.
    """
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        calls = getattr(_recording, "calls", None)
        if calls is not None:
            calls.append(urlsplit(request.url).path)
        return original(self, request, *args, **kwargs)

    HTTPAdapter.send = send


@contextmanager
def _measured() -> Iterator[tuple[list[str], list[str]]]:
    """Collect this thread's SQL statements and outbound HTTP paths.

    ``execute_wrapper`` sits on this thread's own connection, so parallel sign-ins never count
    each other's queries (``CaptureQueriesContext`` toggles a process-wide signal, which races
    between threads). ``BEGIN`` is left out: SQLite logs its ``BEGIN IMMEDIATE``, PostgreSQL
    sends none of its own; savepoints are counted on both.
    """
    from django.db import connection

    statements: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not sql.lstrip().upper().startswith("BEGIN"):
            statements.append(sql)
        return execute(sql, params, many, context)

    _recording.calls = []
    try:
        with connection.execute_wrapper(wrapper):
            yield statements, _recording.calls
    finally:
        _recording.calls = None


# --------------------------------------------------------------------------- provider


def _accounts(libraries: list[Library], count: int) -> dict[str, dict[str, Any]]:
    """The same claims for every library's people, under logins of their own.

    Each library gets its own people so that no library meets another's users (e-mail or
    username clashes would send allauth to its signup form and make django_sso refuse).
    """
    accounts = {}
    for lib in libraries:
        for i in range(count):
            login = f"{lib.key}-u{i}"
            accounts[login] = {
                "sub": f"{login}-sub",
                "email": f"{login}@example.com",
                "email_verified": True,
                "name": f"User {i} Example",
                "given_name": f"User {i}",
                "family_name": "Example",
                "preferred_username": login,
            }
    return accounts


def _op_config(libraries: list[Library], count: int) -> dict[str, Any]:
    import benchmarks

    clients = []
    for client_setting in dict.fromkeys(lib.client_setting for lib in libraries):
        client_id, secret = getattr(benchmarks, client_setting)
        callback_path = next(lib.callback_path for lib in libraries if lib.client_setting == client_setting)
        clients.append(
            {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": [f"http://testserver{callback_path}"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
            }
        )
    return {
        "port": 0,
        "clients": clients,
        "accounts": _accounts(libraries, count),
        "scopes": ["openid", "email", "profile"],
    }


def _check_endpoints(op: OPServer) -> dict[str, str]:
    """Fail unless mozilla's hard-coded endpoints are the provider's; return path -> name."""
    from django.conf import settings

    doc = op.discovery()
    expected = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": doc["authorization_endpoint"],
        "OIDC_OP_TOKEN_ENDPOINT": doc["token_endpoint"],
        "OIDC_OP_USER_ENDPOINT": doc["userinfo_endpoint"],
        "OIDC_OP_JWKS_ENDPOINT": doc["jwks_uri"],
    }
    for name, url in expected.items():
        if getattr(settings, name) != url:
            raise SystemExit(f"benchmarks/settings.py: {name} is not the provider's {url}")
    return {
        urlsplit(doc["token_endpoint"]).path: "token",
        urlsplit(doc["userinfo_endpoint"]).path: "userinfo",
        urlsplit(doc["jwks_uri"]).path: "jwks",
        urlsplit(op.well_known_url).path: "discovery",
    }


def _create_sso_source(op: OPServer) -> None:
    """Configure django_sso as an operator does: the admin form with the well-known URL."""
    from benchmarks import SSO_CLIENT
    from django_sso.forms import SourceForm

    form = SourceForm(
        data={
            "name": "Local provider",
            "slug": "local",
            "protocol": "oidc",
            "enabled": True,
            "display_order": 0,
            "client_id": SSO_CLIENT[0],
            "client_secret": SSO_CLIENT[1],
            "token_endpoint_auth_method": "client_secret_basic",
            "well_known_url": op.well_known_url,
            "scopes": "openid email profile",
            "use_pkce": True,
            "signing_algorithms": "RS256",
            "fetch_userinfo": True,
            "allow_signup": True,
            "extra_authorize_params": "{}",
        }
    )
    if not form.is_valid():
        raise SystemExit(f"django_sso source: {form.errors.as_text()}")
    form.save()


# --------------------------------------------------------------------------- sign-ins


class SignInFailed(RuntimeError):
    """A sign-in did not end signed in at ``/signed-in/``."""


def sign_in(lib: Library, login: str) -> Sample:
    """Run one complete sign-in in a new browser; time and count its callback."""
    from django.contrib.auth import SESSION_KEY
    from django.test import Client

    browser = Client()
    started = time.perf_counter()
    start = browser.post(lib.login_path) if lib.login_method == "post" else browser.get(lib.login_path)
    if start.status_code != 302:
        raise SignInFailed(f"login start answered {start.status_code}")
    with requests.Session() as op_browser:
        callback_url = sign_in_with_requests(
            op_browser, start["Location"], login, redirect_prefix=f"http://testserver{lib.callback_path}"
        )
    parts = urlsplit(callback_url)
    with _measured() as (statements, http_paths):
        before, cpu_before = time.perf_counter(), time.thread_time()
        response = browser.get(f"{parts.path}?{parts.query}")
        callback_seconds = time.perf_counter() - before
        callback_cpu_seconds = time.thread_time() - cpu_before
    total_seconds = time.perf_counter() - started
    if response.status_code not in (302, 303) or response.get("Location") != SIGNED_IN_URL:
        raise SignInFailed(f"callback answered {response.status_code} {response.get('Location', '')}")
    if not browser.session.get(SESSION_KEY):
        raise SignInFailed("callback redirected but the session is not signed in")
    return Sample(
        login, callback_seconds, callback_cpu_seconds, total_seconds, list(statements), list(http_paths)
    )


def run_batch(
    lib: Library, phase: str, logins: list[str], workers: int, max_seconds: float, batch: Batch | None = None
) -> Batch:
    """Sign ``logins`` in, ``workers`` at a time; stop taking new ones after ``max_seconds``.

    With ``batch``, add the samples, errors and wall time to it (one round of a phase). The
    library's settings are in force for the whole batch: the libraries never run at once.
    """
    from django.test.utils import override_settings

    with override_settings(**dict(lib.settings)):
        return _run_batch(lib, phase, logins, workers, max_seconds, batch or Batch(lib, phase, len(logins)))


def _run_batch(
    lib: Library, phase: str, logins: list[str], workers: int, max_seconds: float, batch: Batch
) -> Batch:
    from django.db import connections

    jobs: queue.SimpleQueue[str] = queue.SimpleQueue()
    for login in logins:
        jobs.put(login)
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + max_seconds

    def work() -> None:
        try:
            while time.perf_counter() < deadline:
                try:
                    login = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    sample = sign_in(lib, login)
                except Exception as exc:  # every failure is reported, none stops the batch
                    with lock:
                        batch.errors.append(f"{login}: {type(exc).__name__}: {exc}"[:300])
                else:
                    with lock:
                        batch.samples.append(sample)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A sign-in in flight is bounded by the provider calls' own timeouts.
        thread.join(timeout=max(0.0, deadline - time.perf_counter()) + 120)
    batch.wall_seconds += time.perf_counter() - started
    return batch


def run_phase(
    libraries: list[Library], phase: str, logins: dict[str, list[str]], args: argparse.Namespace
) -> dict[str, Batch]:
    """Run one phase for every library in ``args.rounds`` rounds, the libraries taking turns.

    Interleaving spreads a machine's slow moments over all libraries; each round starts with
    another library. ``args.max_seconds`` caps each library's whole phase.
    """
    batches = {lib.key: Batch(lib, phase, len(logins[lib.key])) for lib in libraries}
    rounds = max(1, min(args.rounds, min(len(v) for v in logins.values())))
    for r in range(rounds):
        order = libraries[r % len(libraries) :] + libraries[: r % len(libraries)]
        for lib in order:
            chunk = logins[lib.key][r::rounds]
            batch = batches[lib.key]
            budget = args.max_seconds - batch.wall_seconds
            if chunk and budget > 0:
                run_batch(lib, phase, chunk, args.workers, budget, batch)
    return batches


# --------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _median_int(values: list[int]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    spread = f" ({min(values)}-{max(values)})" if min(values) != max(values) else ""
    return f"{median:g}{spread}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@dataclass
class Summary:
    """The figures of one library over both phases."""

    lib: Library
    rate: float
    p50: float
    p95: float
    cpu_p50: float
    sign_in_p50: float
    queries_first: float
    queries_returning: float
    first: Batch
    returning: Batch


def summarise(lib: Library, first: Batch, returning: Batch) -> Summary:
    samples = first.samples + returning.samples
    callbacks = [s.callback_seconds for s in samples]
    wall = first.wall_seconds + returning.wall_seconds
    return Summary(
        lib=lib,
        rate=len(samples) / wall if wall else 0.0,
        p50=statistics.median(callbacks) if callbacks else 0.0,
        p95=_p95(callbacks),
        cpu_p50=statistics.median(s.callback_cpu_seconds for s in samples) if samples else 0.0,
        sign_in_p50=statistics.median(s.total_seconds for s in samples) if samples else 0.0,
        queries_first=statistics.median(first.query_counts) if first.samples else 0.0,
        queries_returning=statistics.median(returning.query_counts) if returning.samples else 0.0,
        first=first,
        returning=returning,
    )


def _http_profile(batches: list[Batch], endpoints: dict[str, str]) -> str:
    samples = [s for b in batches for s in b.samples]
    if not samples:
        return "-"
    counts = Counter(endpoints.get(path, path) for s in samples for path in s.http_paths)
    per = {name: n / len(samples) for name, n in counts.items()}
    total = sum(per.values())
    return f"{total:.2f} (" + ", ".join(f"{name} {v:.2f}" for name, v in sorted(per.items())) + ")"


def report(
    summaries: list[Summary], warm: list[Batch], endpoints: dict[str, str], args: argparse.Namespace
) -> str:
    """Return the tables: figures, ratios to django_sso, per phase, outbound calls."""
    from django.conf import settings
    from django.db import connection

    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    sessions = settings.SESSION_ENGINE.rsplit(".", 1)[-1]
    out = [
        f"{args.n} first + {args.n} returning sign-ins per library, {args.workers} in parallel, "
        f"{args.rounds} rounds; database {connection.vendor}, cache {cache}, sessions {sessions}"
    ]
    rows = [
        [
            "library",
            "sign-ins/s",
            "callback p50",
            "callback p95",
            "callback CPU p50",
            "sign-in p50",
            "queries first",
            "queries returning",
            "HTTP calls per callback",
        ]
    ]
    for s in summaries:
        rows.append(
            [
                s.lib.label,
                f"{s.rate:.1f}",
                _ms(s.p50),
                _ms(s.p95),
                _ms(s.cpu_p50),
                _ms(s.sign_in_p50),
                _median_int(s.first.query_counts),
                _median_int(s.returning.query_counts),
                _http_profile([s.first, s.returning], endpoints),
            ]
        )
    out.append(_table(rows))

    base = next((s for s in summaries if s.lib.key == "django_sso"), None)
    if base is not None and len(summaries) > 1:
        out.append("")
        out.append(
            "Ratios, other library / django_sso (times and queries: above 1 means django_sso does less):"
        )
        ratio_rows = [
            [
                "library",
                "sign-ins/s",
                "callback p50",
                "callback p95",
                "callback CPU p50",
                "queries first",
                "queries returning",
            ]
        ]

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}x" if b else "-"

        for s in summaries:
            if s is base:
                continue
            ratio_rows.append(
                [
                    s.lib.label,
                    ratio(s.rate, base.rate),
                    ratio(s.p50, base.p50),
                    ratio(s.p95, base.p95),
                    ratio(s.cpu_p50, base.cpu_p50),
                    ratio(s.queries_first, base.queries_first),
                    ratio(s.queries_returning, base.queries_returning),
                ]
            )
        out.append(_table(ratio_rows))

    out.append("")
    out.append("Per phase (callback p50 / p95, sign-ins/s):")
    for s in summaries:
        for b in (s.first, s.returning):
            callbacks = [x.callback_seconds for x in b.samples]
            p50 = _ms(statistics.median(callbacks)) if callbacks else "-"
            out.append(
                f"  {s.lib.label:30} {b.phase:9} {len(b.samples):4}/{b.planned} in {b.wall_seconds:6.2f} s"
                f"  {b.rate:6.1f}/s  p50 {p50}  p95 {_ms(_p95(callbacks))}  errors {len(b.errors)}"
            )

    out.append("")
    out.append("Outbound HTTP calls of the callbacks (after the warm-up, see the table; during it):")
    for b in warm:
        out.append(f"  {b.library.label:30} warm-up   {_http_profile([b], endpoints)}")
    return "\n".join(out)


def _show_queries(summaries: list[Summary]) -> str:
    out = []
    for s in summaries:
        for b in (s.first, s.returning):
            if b.samples:
                sample = b.samples[0]
                out.append(
                    f"\n-- {s.lib.label}, {b.phase} sign-in of {sample.login}: "
                    f"{len(sample.statements)} statements"
                )
                out.extend(f"   {sql[:160]}" for sql in sample.statements)
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.login", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="first (and returning) sign-ins per library")
    parser.add_argument("--workers", type=int, default=4, help="sign-ins in parallel")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="wall-clock cap per library and phase"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per phase, the libraries taking turns")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured sign-ins per library first")
    parser.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        help=f"comma-separated, from {', '.join(LIBRARIES)}",
    )
    parser.add_argument(
        "--show-queries", action="store_true", help="print one callback's SQL per library and phase"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.n <= MAX_SIGN_INS:
        parser.error(f"--n must be between 1 and {MAX_SIGN_INS}")
    if not 1 <= args.workers <= 32:
        parser.error("--workers must be between 1 and 32")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not 0 <= args.warmup <= 20:
        parser.error("--warmup must be between 0 and 20")
    unknown = set(args.libraries.split(",")) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    libraries = [LIBRARIES[key] for key in args.libraries.split(",")]
    per_library = args.warmup + args.n
    with (
        tempfile.TemporaryDirectory(prefix="django-sso-bench-") as tmp,
        OPServer(_op_config(libraries, per_library)) as op,
    ):
        os.environ["BENCH_OP_ISSUER"] = op.issuer
        os.environ["BENCH_SQLITE_PATH"] = os.path.join(tmp, "bench.sqlite3")
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
        import django

        django.setup()
        from django.db import connection

        endpoints = _check_endpoints(op)
        _install_http_recorder()
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            _create_sso_source(op)
            logins = {lib.key: [f"{lib.key}-u{i}" for i in range(per_library)] for lib in libraries}
            warm = [run_batch(lib, "warm-up", logins[lib.key][: args.warmup], 1, 60) for lib in libraries]
            for batch in warm:
                if batch.errors:
                    raise SystemExit(f"{batch.library.label} warm-up failed: {batch.errors[0]}")
            measured = {lib.key: logins[lib.key][args.warmup :] for lib in libraries}
            batches: dict[tuple[str, str], Batch] = {}
            for phase in ("first", "returning"):
                for key, batch in run_phase(libraries, phase, measured, args).items():
                    batches[key, phase] = batch
            summaries = [
                summarise(lib, batches[lib.key, "first"], batches[lib.key, "returning"]) for lib in libraries
            ]
            print(report(summaries, warm, endpoints, args))
            if args.show_queries:
                print(_show_queries(summaries))
            errors = [e for b in batches.values() for e in b.errors]
            incomplete = [b for b in batches.values() if len(b.samples) < b.planned]
            for error in errors[:10]:
                print(f"error: {error}", file=sys.stderr)
            if incomplete:
                done = ", ".join(
                    f"{b.library.key} {b.phase} {len(b.samples)}/{b.planned}" for b in incomplete
                )
                print(f"incomplete: {done}", file=sys.stderr)
            return 1 if errors or incomplete else 0
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
