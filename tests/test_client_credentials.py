"""Client credentials: ``source.client_credentials_token()`` and its cache, against the in-process
provider's token endpoint (the real provider's is exercised in test_providers_e2e.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import time_machine
from django.core.cache import caches

from django_sso.exceptions import ConfigurationError, ProviderError
from django_sso.internal import client_credentials
from tests.conftest import make_source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET, _json

ROOT = Path(__file__).resolve().parent.parent


class TokenEndpoint:
    """A client-credentials token endpoint that counts its calls and records what it got."""

    def __init__(self, expires_in: Any = 300, delay: float = 0.0, answer: Any = None) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.answer = answer
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        with self.lock:
            self.calls.append({"form": dict(parse_qsl(body)), "headers": dict(request.headers)})
            number = len(self.calls)
        if self.delay:
            time.sleep(self.delay)
        if self.answer is not None:
            return self.answer
        token = {"access_token": f"cc-token-{number}", "token_type": "Bearer", "expires_in": self.expires_in}
        if self.expires_in is None:
            del token["expires_in"]
        return _json(token)


@pytest.fixture
def endpoint(op):
    token_endpoint = TokenEndpoint()
    op.scenario["respond"] = {"/token": token_endpoint}
    return token_endpoint


@pytest.fixture
def source(db, op):
    return make_source(op, "honest")


def test_a_token_is_fetched_with_the_client_credentials_grant(source, endpoint):
    token = source.client_credentials_token(
        scope="orders:read orders:write", audience="https://api.example.com"
    )
    assert token == "cc-token-1"
    (call,) = endpoint.calls
    assert call["form"] == {
        "grant_type": "client_credentials",
        "scope": "orders:read orders:write",
        "audience": "https://api.example.com",
    }
    basic = base64.b64decode(call["headers"]["Authorization"].removeprefix("Basic ")).decode()
    assert basic == f"{CLIENT_ID}:{CLIENT_SECRET}"


def test_client_secret_post_and_resource(source, endpoint):
    source.token_endpoint_auth_method = "client_secret_post"
    source.save()
    source.client_credentials_token(resource="https://api.example.com/")
    form = endpoint.calls[0]["form"]
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == CLIENT_SECRET
    assert form["resource"] == "https://api.example.com/"
    assert "Authorization" not in endpoint.calls[0]["headers"]


def test_the_cache_avoids_a_second_request(source, endpoint):
    assert source.client_credentials_token(scope="a b") == "cc-token-1"
    assert source.client_credentials_token(scope="a b") == "cc-token-1"
    assert source.client_credentials_token(scope=["b", "a"]) == "cc-token-1"
    assert len(endpoint.calls) == 1
    # Another scope, audience or resource is another token.
    assert source.client_credentials_token(scope="a") == "cc-token-2"
    assert source.client_credentials_token(scope="a b", audience="x") == "cc-token-3"
    assert source.client_credentials_token(scope="a b", resource="https://r.example/") == "cc-token-4"
    assert len(endpoint.calls) == 4


def test_the_token_is_reused_until_shortly_before_it_expires(source, endpoint, settings):
    settings.DJANGO_SSO_CLIENT_CREDENTIALS_MARGIN = 60
    with time_machine.travel(time.time(), tick=False) as clock:
        assert source.client_credentials_token() == "cc-token-1"
        clock.shift(239)
        assert source.client_credentials_token() == "cc-token-1"
        clock.shift(2)
        assert source.client_credentials_token() == "cc-token-2"
    assert len(endpoint.calls) == 2


@pytest.mark.parametrize(("expires_in", "reused_for"), [(60, 30), (None, 240), ("300", 240), (0, 240)])
def test_short_or_missing_lifetimes(source, endpoint, expires_in, reused_for):
    endpoint.expires_in = expires_in
    with time_machine.travel(time.time(), tick=False) as clock:
        source.client_credentials_token()
        clock.shift(reused_for - 1)
        source.client_credentials_token()
        assert len(endpoint.calls) == 1
        clock.shift(2)
        source.client_credentials_token()
        assert len(endpoint.calls) == 2


def test_a_new_secret_means_a_new_token(source, endpoint):
    source.client_credentials_token()
    source.client_secret = "a-new-secret-0123456789-0123456789-abcdef"
    source.save()
    assert source.client_credentials_token() == "cc-token-2"


def test_the_cached_token_is_encrypted(source, endpoint):
    token = source.client_credentials_token(scope="a")
    raw = caches["default"].get(client_credentials.cache_key(source, ["a"], None, None))
    assert isinstance(raw, str)
    assert token not in raw


def test_a_tampered_cache_entry_is_ignored(source, endpoint):
    source.client_credentials_token()
    caches["default"].set(client_credentials.cache_key(source, [], None, None), "garbage", 300)
    assert source.client_credentials_token() == "cc-token-2"


def test_concurrent_callers_share_one_request(source, endpoint):
    endpoint.delay = 0.2
    results: list[str] = []

    def call() -> None:
        results.append(source.client_credentials_token(scope="shared"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["cc-token-1"] * 8
    assert len(endpoint.calls) == 1


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ((401, {"Content-Type": "application/json"}, b'{"error": "invalid_client"}'), "sso.token.status"),
        ((400, {"Content-Type": "application/json"}, b'{"error": "invalid_scope"}'), "sso.token.error"),
        (_json({"access_token": "t", "token_type": "DPoP", "expires_in": 300}), "sso.token.bad_token_type"),
        (_json({"token_type": "Bearer"}), "sso.token.no_access_token"),
        ((302, {"Location": "https://collector.example/"}, b""), "sso.http.redirect_refused"),
    ],
    ids=["401", "invalid_scope", "dpop", "no token", "redirect"],
)
def test_a_refusal_raises_and_caches_nothing(source, endpoint, network, answer, code):
    endpoint.answer = answer
    with pytest.raises(ProviderError) as caught:
        source.client_credentials_token(scope="a")
    assert caught.value.code == code
    assert caches["default"].get(client_credentials.cache_key(source, ["a"], None, None)) is None
    assert network.collector == []


def test_oauth1_sources_have_no_client_credentials(db, op):
    source = make_source(op, "tw", protocol="oauth1", issuer="")
    with pytest.raises(ConfigurationError):
        source.client_credentials_token()


def test_another_process_uses_the_cached_token(source, endpoint, settings, tmp_path):
    """The cache is Django's: a second process with the same cache gets the token, no request."""
    cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    settings.CACHES = {"default": cache}
    token = source.client_credentials_token(scope="shared")
    script = f"""
import django, json, sys
from django.conf import settings
settings.configure(
    SECRET_KEY={settings.SECRET_KEY!r},
    CACHES={{"default": {json.dumps(cache)}}},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_sso"],
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
    USE_TZ=True,
)
django.setup()
from datetime import datetime
from django_sso.models import Source
source = Source(
    pk={source.pk},
    client_id={source.client_id!r},
    client_secret="unused",
    updated_at=datetime.fromisoformat({source.updated_at.isoformat()!r}),
    # If the cache missed, this request would fail: nothing answers there.
    token_url="https://unreachable.invalid/token",
)
sys.stdout.write(source.client_credentials_token(scope="shared"))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == token
    assert len(endpoint.calls) == 1
