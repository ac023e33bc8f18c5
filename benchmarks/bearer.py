"""Bearer benchmark: API requests with access tokens from the local provider, four ways side by side.

Run from the repository root (needs node/npm for the provider and the ``bench`` extra)::

    .venv/bin/python -m benchmarks.bearer

One provider (``tests/op``, npm ``oidc-provider`` on 127.0.0.1) issues the tokens: RFC 9068 JWT
access tokens for the resource ``https://api.example.test`` (client credentials, and a person's
tokens by refresh with ``resource``), and opaque access tokens for its UserInfo endpoint. The same
tiny JSON view answers behind:

(a) django_sso's bearer authentication (``@bearer_required(scopes=...)``; and its DRF classes);
(b) the floor: the view calls ``jwt.decode`` once with the provider's key already in memory;
(c) mozilla-django-oidc's DRF ``OIDCAuthentication``, which asks UserInfo about every token;
(d) no authentication.

Requests go through Django's WSGI handler in this process (no sockets, one thread), so the figures
are the server's own cost per request. "Fresh" requests each carry a token the view has not seen
(django_sso's cache of checked tokens is emptied before each fresh pass); "repeated" ones carry
one token again and again. Each pass is timed in ``--rounds`` rounds, the views taking turns; the
median round counts. SQL statements and outbound HTTP calls are counted in separate untimed passes.

Machines are noisy: compare the ratios of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

from tests.support.op_server import OPServer, sign_in_with_requests

API = "https://api.example.test"
REDIRECT_URI = "http://testserver/cb"
SCOPES = ["openid", "email", "profile", "offline_access", "app:manage_orders"]
ALICE = {
    "sub": "alice-sub",
    "email": "alice@example.com",
    "email_verified": True,
    "name": "Alice Example",
    "preferred_username": "alice",
}


@dataclass(frozen=True)
class Leg:
    """One view under test and the tokens it is called with."""

    key: str
    label: str
    path: str
    pool: str  # which token pool: "service", "user", "opaque" or "none"


LEGS = [
    Leg("a", "(a) django_sso @bearer_required", "/sso/", "service"),
    Leg("a-user", "(a) django_sso, a person's token", "/sso/", "user"),
    Leg("a-drf", "(a) django_sso DRF classes", "/sso-drf/", "service"),
    Leg("b", "(b) floor: one jwt.decode", "/floor/", "service"),
    Leg("c", "(c) mozilla-django-oidc DRF", "/mozilla-drf/", "opaque"),
    Leg("d", "(d) no authentication", "/plain/", "none"),
]


@dataclass
class Result:
    leg: Leg
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"fresh": [], "repeated": []})
    requests: dict[str, int] = field(default_factory=dict)
    queries: dict[str, float] = field(default_factory=dict)
    http_calls: dict[str, float] = field(default_factory=dict)

    def rps(self, kind: str) -> float:
        return self.requests[kind] / statistics.median(self.seconds[kind])

    def micros(self, kind: str) -> float:
        return 1e6 / self.rps(kind)


# --------------------------------------------------------------------------- the provider's tokens


def _code_flow(op: OPServer, client: tuple[str, str], scope: str, resource: str | None) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client[0],
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    extra = {"resource": resource} if resource else {}
    url = f"{op.discovery()['authorization_endpoint']}?{urlencode({**params, **extra})}"
    callback = sign_in_with_requests(requests.Session(), url, "alice", redirect_prefix=REDIRECT_URI)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **extra,
    }
    answer = requests.post(op.url("/token"), data=data, auth=client, timeout=10)
    answer.raise_for_status()
    return answer.json()


def _refreshed(
    op: OPServer, client: tuple[str, str], first: dict[str, Any], count: int, resource: str | None
) -> list[str]:
    """``count`` fresh access tokens of one person: refresh grants (refresh tokens rotate)."""
    tokens, refresh = [first["access_token"]], first["refresh_token"]
    session = requests.Session()
    extra = {"resource": resource} if resource else {}
    while len(tokens) < count:
        answer = session.post(
            op.url("/token"),
            data={"grant_type": "refresh_token", "refresh_token": refresh, **extra},
            auth=client,
            timeout=10,
        )
        answer.raise_for_status()
        body = answer.json()
        tokens.append(body["access_token"])
        refresh = body["refresh_token"]
    return tokens


def fetch_tokens(op: OPServer, client: tuple[str, str], args: argparse.Namespace) -> dict[str, list[str]]:
    session = requests.Session()
    service = []
    form = {"grant_type": "client_credentials", "scope": "app:manage_orders"}
    for _ in range(args.fresh):
        answer = session.post(op.url("/token"), data=form, auth=client, timeout=10)
        answer.raise_for_status()
        service.append(answer.json()["access_token"])
    user = _code_flow(op, client, "openid offline_access app:manage_orders", API)
    opaque = _code_flow(op, client, "openid email offline_access", None)
    return {
        "service": service,
        "user": _refreshed(op, client, user, args.fresh, API),
        "opaque": _refreshed(op, client, opaque, args.fresh_mozilla, None),
        "none": [""],
    }


# --------------------------------------------------------------------------- the site


def setup_site(op: OPServer, client: tuple[str, str]) -> None:
    """Migrate, configure the source as an operator would, and link alice."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from django_sso.forms import SourceForm
    from django_sso.models import Identity

    call_command("migrate", verbosity=0, stdout=io.StringIO())
    form = SourceForm(
        data={
            "name": "Local provider",
            "slug": "local",
            "protocol": "oidc",
            "enabled": True,
            "display_order": 0,
            "client_id": client[0],
            "client_secret": client[1],
            "token_endpoint_auth_method": "client_secret_basic",
            "well_known_url": op.well_known_url,
            "scopes": "openid email profile",
            "use_pkce": True,
            "signing_algorithms": "RS256",
            "extra_authorize_params": "{}",
            "bearer_audiences": API,
            "bearer_require_at_jwt": True,
            "permission_prefix": "app:",
        }
    )
    if not form.is_valid():
        raise SystemExit(f"django_sso source: {form.errors.as_text()}")
    source = form.save()
    user = get_user_model().objects.create_user("alice", "alice@example.com")
    Identity.objects.create(source=source, subject="alice-sub", user=user)


def load_floor_key(op: OPServer, token: str) -> None:
    import jwt

    from benchmarks import bearer_urls

    bearer_urls.FLOOR_KEY.append(jwt.PyJWKClient(op.url("/jwks")).get_signing_key_from_jwt(token).key)


class Caller:
    """Calls the WSGI handler directly: the server's cost of a request, without sockets."""

    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory

        self.handler = WSGIHandler()
        self.base = RequestFactory()._base_environ()

    def __call__(self, path: str, token: str) -> int:
        environ = {**self.base, "PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
        if token:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        status: list[str] = []
        body = self.handler(environ, lambda s, headers, exc_info=None: status.append(s))
        for _ in body:
            pass
        body.close()
        return int(status[0][:3])


def _http_counter() -> list[int]:
    calls = [0]
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(self, request, *args, **kwargs)

    HTTPAdapter.send = send
    return calls


def run_pass(call: Callable[[str, str], int], leg: Leg, tokens: list[str], kind: str, count: int) -> float:
    """Time ``count`` requests; a fresh pass never meets a token django_sso has checked before."""
    from django_sso.internal import token_cache

    token_cache.clear()
    fresh = kind == "fresh"
    started = time.perf_counter()
    for i in range(count):
        if fresh and i and i % len(tokens) == 0:
            token_cache.clear()  # the pool wrapped around: forget it again
        status = call(leg.path, tokens[i % len(tokens)] if fresh else tokens[0])
        if status != 200:
            raise SystemExit(f"{leg.label}: HTTP {status}")
    return time.perf_counter() - started


def count_pass(
    call: Callable[[str, str], int], leg: Leg, tokens: list[str], kind: str, count: int, http: list[int]
) -> tuple[float, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    before = http[0]
    with CaptureQueriesContext(connection) as queries:
        run_pass(call, leg, tokens, kind, count)
    return len(queries.captured_queries) / count, (http[0] - before) / count


# --------------------------------------------------------------------------- report


def report(results: dict[str, Result], args: argparse.Namespace) -> str:
    head = (
        f"bearer benchmark: {args.rounds} rounds, median round; {args.requests} requests a pass "
        f"({args.requests_mozilla} for mozilla-django-oidc); Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    lines = [
        head,
        "",
        "| view | fresh req/s | fresh µs/req | repeated req/s | repeated µs/req "
        "| SQL/req fresh, repeated | provider calls/req |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for key in ("a", "a-user", "a-drf", "b", "c", "d"):
        r = results[key]
        lines.append(
            f"| {r.leg.label} | {r.rps('fresh'):,.0f} | {r.micros('fresh'):,.0f} | "
            f"{r.rps('repeated'):,.0f} | {r.micros('repeated'):,.0f} | "
            f"{r.queries['fresh']:.2f}, {r.queries['repeated']:.2f} | "
            f"{r.http_calls['fresh']:.2f}, {r.http_calls['repeated']:.2f} |"
        )
    a, a_drf, b, c = results["a"], results["a-drf"], results["b"], results["c"]

    def ratio(x: Result, y: Result, kind: str) -> float:
        return x.micros(kind) / y.micros(kind)

    lines += [
        "",
        "Cost ratios (µs per request, lower is faster):",
        f"* a/b fresh    = {ratio(a, b, 'fresh'):.3f}  (goal <= 1.15)",
        f"* a/b repeated = {ratio(a, b, 'repeated'):.3f}  (goal < 1: faster than the floor)",
        f"* c/a fresh    = {ratio(c, a, 'fresh'):.1f}  (c/a-DRF {ratio(c, a_drf, 'fresh'):.1f}; goal >= 10)",
        f"* c/a repeated = {ratio(c, a, 'repeated'):.1f}  (c/a-DRF {ratio(c, a_drf, 'repeated'):.1f})",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bearer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests a pass (default 1000)")
    parser.add_argument("--requests-mozilla", type=int, default=200, help="requests a pass for (c)")
    parser.add_argument("--fresh", type=int, default=1000, help="distinct JWT access tokens per pool")
    parser.add_argument("--fresh-mozilla", type=int, default=50, help="distinct opaque tokens for (c)")
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = ("bench-api-client", "bench-api-client-secret-0123456789abcdef")
    config = {
        "port": 0,
        "clients": [
            {
                "client_id": client[0],
                "client_secret": client[1],
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            }
        ],
        "accounts": {"alice": ALICE},
        "scopes": SCOPES,
        "resource": API,
    }
    with tempfile.TemporaryDirectory(prefix="django-sso-bearer-bench-") as tmp, OPServer(config) as op:
        os.environ["BENCH_OP_ISSUER"] = op.issuer
        os.environ["BENCH_SQLITE_PATH"] = os.path.join(tmp, "bench.sqlite3")
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bearer_settings"
        import django

        django.setup()
        setup_site(op, client)
        print("fetching tokens from the provider ...", file=sys.stderr)
        tokens = fetch_tokens(op, client, args)
        load_floor_key(op, tokens["service"][0])
        http = _http_counter()
        call = Caller()
        results = {leg.key: Result(leg) for leg in LEGS}
        for leg in LEGS:  # warm-up: keys fetched, mozilla's user created, imports done
            count = args.requests_mozilla if leg.key == "c" else args.requests
            for kind in ("fresh", "repeated"):
                run_pass(call, leg, tokens[leg.pool], kind, min(count, 50))
                results[leg.key].requests[kind] = count
                results[leg.key].queries[kind], results[leg.key].http_calls[kind] = count_pass(
                    call, leg, tokens[leg.pool], kind, min(count, 200), http
                )
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds} ...", file=sys.stderr)
            order = LEGS[round_ % len(LEGS) :] + LEGS[: round_ % len(LEGS)]
            for leg in order:
                for kind in ("fresh", "repeated"):
                    seconds = run_pass(call, leg, tokens[leg.pool], kind, results[leg.key].requests[kind])
                    results[leg.key].seconds[kind].append(seconds)
        print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
