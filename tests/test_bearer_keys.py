"""Bearer tokens and the provider's keys (issue 5 point 7, RP-CASES KEY-* as they apply to bearer).

Also the outbound-call count: 1,000 requests with valid tokens cost the provider nothing after the
first JWKS fetch.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.cache import caches

from django_sso import bearer as bearer_module
from django_sso.exceptions import InvalidToken
from django_sso.internal import jwks, source_map, token_cache
from tests.bearer_support import (
    _fresh_bearer_memory,  # noqa: F401  (autouse)
    access_claims,
    assert_refused,
    bearer,
    link_user,
    make_api_source,
    mint_at,
    service_claims,
)
from tests.fakeop import FakeOP, SigningKey, pooled_rsa_key
from tests.test_cases_keys import COOLDOWN, Clock, jwks_fetches

WHOAMI = "/api/whoami/"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    moving = Clock(monkeypatch)
    yield moving
    moving.stop()


@pytest.fixture
def api(db: Any, op: FakeOP) -> Any:
    source = make_api_source(op)
    link_user(source)
    return source


def rotate(op: FakeOP, index: int, *, drop_old: bool = False) -> SigningKey:
    """Publish a new key first (it signs from now on), as a provider's rotation does."""
    key = SigningKey(f"honest-rot{index}", pooled_rsa_key(index))
    op.keys = [key] if drop_old else [key, *op.keys]
    return key


@pytest.mark.case("KEY-01")
def test_key_01_bearer_token_without_kid(db, op, client):
    make_api_source(op)
    op.keys = [SigningKey(None, pooled_rsa_key(0))]
    token = mint_at(op, service_claims(op))
    assert client.get(WHOAMI, **bearer(token)).status_code == 200


@pytest.mark.case("KEY-02")
def test_key_02_bearer_token_without_kid_several_keys(db, op, client):
    make_api_source(op)
    op.keys = [SigningKey(None, pooled_rsa_key(i)) for i in (2, 3, 0)]
    signed_by_third = op.mint(service_claims(op), {"typ": "at+jwt"}, key=op.keys[2])
    assert client.get(WHOAMI, **bearer(signed_by_third)).status_code == 200


@pytest.mark.case("KEY-03")
def test_key_03_rotation_one_refetch_then_accepted(api, op, client, clock):
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200
    clock.advance(COOLDOWN + 1)
    rotate(op, 1)
    for _ in range(10):
        assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200
    assert jwks_fetches(op) == 2


@pytest.mark.case("KEY-04")
def test_key_04_random_kid_flood_one_fetch_per_cooldown(api, op, client, clock):
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200
    for _ in range(1000):
        token = mint_at(op, header={"kid": secrets.token_hex(8)})
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert jwks_fetches(op) == 1, "the first fetch started the cooldown"
    clock.advance(COOLDOWN + 1)
    for _ in range(1000):
        token = mint_at(op, header={"kid": secrets.token_hex(8)})
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert jwks_fetches(op) == 2, "one refetch per cooldown"
    clock.advance(COOLDOWN + 1)
    rotate(op, 1)
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200, "a real rotation is still seen"
    assert jwks_fetches(op) == 3


@pytest.mark.case("KEY-04")
def test_key_04_concurrent_requests_share_one_refetch(api, op, client, clock, settings):
    settings.DJANGO_SSO_SOURCE_CACHE_SECONDS = 3600  # the clock jumps; the threads touch no database
    client.get(WHOAMI, **bearer(mint_at(op)))
    source_map.current()
    assert jwks_fetches(op) == 1
    clock.advance(COOLDOWN + 1)

    def slow_jwks(request: Any) -> Any:
        time.sleep(0.05)  # keep the fetch in flight while the other threads miss
        return 200, {"Content-Type": "application/json"}, json.dumps(op.jwks()).encode()

    op.scenario["respond"] = {"/jwks": slow_jwks}
    new_key = rotate(op, 1)
    threads = 24
    tokens = [mint_at(op, service_claims(op), key=new_key) for _ in range(threads // 2)]
    tokens += [
        mint_at(op, service_claims(op), header={"kid": secrets.token_hex(6)}) for _ in range(threads // 2)
    ]
    barrier = threading.Barrier(threads)

    def check(token: str) -> bool:
        barrier.wait()
        try:
            bearer_module.validate(token)
        except InvalidToken:
            return False
        return True

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(check, tokens))
    assert jwks_fetches(op) == 2, "one refetch for every concurrent miss"
    assert results == [True] * (threads // 2) + [False] * (threads // 2)


@pytest.mark.case("KEY-05")
def test_key_05_removed_key_refused_after_refresh_even_when_remembered(api, op, client, clock):
    old = mint_at(op)
    for _ in range(3):
        assert client.get(WHOAMI, **bearer(old)).status_code == 200  # remembered
    clock.advance(COOLDOWN + 1)
    rotate(op, 1, drop_old=True)
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200  # the refresh
    assert jwks_fetches(op) == 2
    assert_refused(client.get(WHOAMI, **bearer(old)), 401, "invalid_token", old)
    assert_refused(
        client.get(WHOAMI, **bearer(mint_at(op, key=SigningKey("honest-k1", pooled_rsa_key(0))))),
        401,
        "invalid_token",
    )


@pytest.mark.case("KEY-05")
def test_key_05_failed_refresh_keeps_keys_and_remembered_tokens(api, op, client, clock):
    token = mint_at(op)
    assert client.get(WHOAMI, **bearer(token)).status_code == 200
    clock.advance(COOLDOWN + 1)
    op.scenario["respond"] = {"/jwks": (500, {"Content-Type": "text/plain"}, b"down")}
    unknown = mint_at(op, header={"kid": "rotated-away"})
    assert_refused(client.get(WHOAMI, **bearer(unknown)), 401, "invalid_token", unknown)
    assert client.get(WHOAMI, **bearer(token)).status_code == 200
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200


@pytest.mark.case("KEY-06")
def test_key_06_unusable_keys_never_verify_bearer_tokens(db, op, client, sso_log):
    make_api_source(op)
    good = op.keys[0].public_jwk()
    op.scenario["jwks_body"] = {
        "keys": [
            {**good, "use": "enc"},
            {"kty": "oct", "kid": good["kid"], "k": "c2VjcmV0"},
            {**SigningKey(good["kid"], pooled_rsa_key(1)).public_jwk()},
        ]
    }
    token = mint_at(op, service_claims(op))
    assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert "code=sso.bearer.bad_signature" in sso_log.text


def test_keys_are_shared_through_djangos_cache(api, op, client):
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200
    assert caches["default"].get(api.cache_key("jwks"))
    jwks.clear()  # another process: nothing in its memory, the same Django cache
    token_cache.clear()
    assert client.get(WHOAMI, **bearer(mint_at(op))).status_code == 200
    assert jwks_fetches(op) == 1


def test_a_thousand_requests_cost_one_jwks_fetch_and_nothing_else(api, op, client, network):
    """1,000 requests with valid tokens: zero provider calls after the first JWKS fetch."""
    tokens = [mint_at(op, service_claims(op) if i % 2 else access_claims(op)) for i in range(500)]
    tokens += tokens  # half fresh, half repeated
    for token in tokens:
        assert client.get(WHOAMI, **bearer(token)).status_code == 200
    assert [r.path for r in op.requests] == ["/honest/jwks"]
    assert network.collector == []
    assert token_cache.size() == 500
