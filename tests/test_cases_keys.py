"""RP-CASES F (KEY-01..06): key sets without kid, rotation, refetch limits, failures, bad keys."""

from __future__ import annotations

import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import requests
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec

from django_sso.internal import jwks
from tests.conftest import make_source
from tests.fakeop import DROP, FakeOP, SigningKey, b64url, ec_key, new_rsa_key, pooled_rsa_key, sign_compact
from tests.test_cases_id_token import STRONG_SECRET, assert_rejected, assert_signed_in, op_paths, signed_with

DAY = 24 * 3600
COOLDOWN = 30


def jwks_fetches(op: FakeOP) -> int:
    return op_paths(op).count("/jwks")


def _json(body: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class Clock:
    """Move wall-clock time (time_machine) and ``time.monotonic`` forward together.

    time_machine leaves ``time.monotonic`` alone, and the refetch cooldown is measured with it.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real = time.monotonic
        monkeypatch.setattr(time, "monotonic", lambda: real() + self.offset)
        self._travel = time_machine.travel(time.time(), tick=True)
        self._coordinates = self._travel.start()

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self._coordinates.shift(seconds)

    def stop(self) -> None:
        self._travel.stop()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    moving = Clock(monkeypatch)
    yield moving
    moving.stop()


def by(key: SigningKey) -> Any:
    """Return an ``id_token_raw`` knob signing with ``key`` (its kid, or none, in the header)."""
    return lambda op, claims: op.mint(claims, key=key)


# ---- KEY-01: no kid, one matching key ---------------------------------------------------------
@pytest.mark.case("KEY-01")
@pytest.mark.parametrize("jwk_kid", [None, "sig-1"], ids=["jwk-without-kid", "jwk-with-kid"])
def test_key_01_no_kid_single_matching_key(db, op, client, sign_in, jwk_kid):
    signer = SigningKey(None, pooled_rsa_key(0))
    unrelated = [
        {**SigningKey("enc-1", pooled_rsa_key(2)).public_jwk(), "use": "enc", "alg": "RSA-OAEP"},
        {**SigningKey("enc-2", pooled_rsa_key(3)).public_jwk(), "use": DROP, "alg": "RSA-OAEP-256"},
        ec_key("ec-1").public_jwk(),
    ]
    unrelated = [{k: v for k, v in jwk.items() if v is not DROP} for jwk in unrelated]
    op.keys = [signer]
    op.scenario["jwks_body"] = {"keys": [*unrelated, SigningKey(jwk_kid, pooled_rsa_key(0)).public_jwk()]}
    make_source(op, "honest")
    assert_signed_in(sign_in(), client)
    assert "kid" not in jwt.get_unverified_header(op.issued[-1])


# ---- KEY-02: no kid, several candidate keys (decision 2: try at most 5 that fit) --------------------
@pytest.mark.case("KEY-02")
def test_key_02_no_kid_several_rsa_keys_one_verifies(source, op, client, sign_in):
    op.keys = [SigningKey(f"k{i}", pooled_rsa_key(i)) for i in (2, 3, 0)]
    op.scenario["id_token_raw"] = by(SigningKey(None, pooled_rsa_key(0)))
    assert_signed_in(sign_in(), client)


@pytest.mark.case("KEY-02")
def test_key_02_keys_that_do_not_fit_do_not_use_up_the_budget(source, op, client, sign_in):
    ec_keys = [ec_key(f"ec{i}").public_jwk() for i in range(5)]
    enc_keys = [
        {**SigningKey(f"enc{i}", pooled_rsa_key(i + 2)).public_jwk(), "use": "enc", "alg": "RSA-OAEP"}
        for i in range(5)
    ]
    op.scenario["jwks_body"] = {"keys": [*ec_keys, *enc_keys, op.keys[0].public_jwk()]}
    op.scenario["id_token_raw"] = by(SigningKey(None, pooled_rsa_key(0)))
    assert_signed_in(sign_in(), client)


@pytest.mark.case("KEY-02")
def test_key_02_at_most_five_keys_are_tried(source, op, client, sign_in, sso_log):
    op.keys = [SigningKey(f"k{i}", pooled_rsa_key(i)) for i in (2, 3, 4, 5, 6, 0)]
    op.scenario["id_token_raw"] = by(SigningKey(None, pooled_rsa_key(0)))
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")
    assert len(jwks.keys_for(source, None, "RS256")) == jwks.MAX_KEYS_WITHOUT_KID == 5


# ---- KEY-03: rotation ------------------------------------------------------------------------------
@pytest.mark.case("KEY-03")
@pytest.mark.parametrize("when", ["between-sign-ins", "just-before-signing"])
def test_key_03_rotation_costs_exactly_one_refetch(source, op, client, sign_in, clock, when):
    assert_signed_in(sign_in(), client)
    client.logout()
    assert jwks_fetches(op) == 1
    clock.advance(COOLDOWN + 1)  # the next sign-in comes after the refetch cooldown
    new = SigningKey("honest-k2", pooled_rsa_key(4))

    def rotate() -> None:
        if op.keys[0] is not new:
            op.keys = [new]  # the old key is gone too

    if when == "between-sign-ins":
        rotate()
    else:
        op.scenario["id_token_raw"] = lambda o, claims: (rotate(), o.mint(claims))[1]
    assert_signed_in(sign_in(), client)
    assert jwt.get_unverified_header(op.issued[-1])["kid"] == "honest-k2"
    assert jwks_fetches(op) == 2
    client.logout()
    assert_signed_in(sign_in(), client)
    assert jwks_fetches(op) == 2


# ---- KEY-04: random-kid floods --------------------------------------------------------------------
@pytest.mark.case("KEY-04")
def test_key_04_thousand_random_kids_one_fetch_per_cooldown(source, op, clock):
    assert jwks.keys_for(source, op.keys[0].kid, "RS256")
    assert jwks_fetches(op) == 1
    for _ in range(1000):
        assert jwks.keys_for(source, secrets.token_hex(8), "RS256") == []
    assert jwks_fetches(op) == 1
    # A key the provider publishes now is not fetched within the window...
    op.keys.append(SigningKey("honest-k2", pooled_rsa_key(4)))
    assert jwks.keys_for(source, "honest-k2", "RS256") == []
    clock.advance(COOLDOWN - 1)
    assert jwks.keys_for(source, "honest-k2", "RS256") == []
    assert jwks_fetches(op) == 1
    # ... but once the cooldown has passed, the legitimate rotation is picked up.
    clock.advance(1)
    assert [k.key_id for k in jwks.keys_for(source, "honest-k2", "RS256")] == ["honest-k2"]
    assert jwks_fetches(op) == 2
    for _ in range(1000):
        assert jwks.keys_for(source, secrets.token_hex(8), "RS256") == []
    assert jwks_fetches(op) == 2
    assert jwks.keys_for(source, op.keys[0].kid, "RS256")


@pytest.mark.case("KEY-04")
def test_key_04_cold_flood_fetches_once(source, op):
    for _ in range(1000):
        assert jwks.keys_for(source, secrets.token_hex(8), "RS256") == []
    assert jwks_fetches(op) == 1
    assert jwks.keys_for(source, op.keys[0].kid, "RS256")
    assert jwks_fetches(op) == 1


@pytest.mark.case("KEY-04")
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_key_04_concurrent_misses_share_one_fetch(source, op, warm):
    if warm:
        assert jwks.keys_for(source, op.keys[0].kid, "RS256")

    def slow_jwks(request: Any) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.05)  # keep the fetch in flight while the other threads miss
        return _json(op.jwks())

    op.scenario["respond"] = {"/jwks": slow_jwks}
    threads = 16
    barrier = threading.Barrier(threads)

    def lookup(i: int) -> list[Any]:
        barrier.wait()
        return jwks.keys_for(source, op.keys[0].kid if i % 2 else secrets.token_hex(8), "RS256")

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lookup, range(threads)))
    assert jwks_fetches(op) == 1
    assert all(results[1::2]), "every lookup of the real kid finds it"
    assert not any(results[0::2])


@pytest.mark.case("KEY-04")
def test_key_04_flood_of_sign_ins_with_random_kids(source, op, client, sign_in, sso_log):
    assert_signed_in(sign_in(), client)
    client.logout()
    for _ in range(5):
        op.scenario["id_token_header"] = {"kid": secrets.token_hex(8)}
        assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.unknown_key")
    assert jwks_fetches(op) == 1


# ---- KEY-05: failed refreshes and removed keys ------------------------------------------------------
def _break_jwks(op: FakeOP, failure: str) -> None:
    def timeout(request: Any) -> Any:
        raise requests.ReadTimeout("JWKS read timed out")

    op.scenario["respond"] = {
        "/jwks": {
            "500": (500, {"Content-Type": "text/plain"}, b"internal error"),
            "html": (200, {"Content-Type": "text/html"}, b"<html><body>maintenance</body></html>"),
            "empty": _json({"keys": []}),
            "not-a-jwks": _json({"keys": "none"}),
            "only-unusable-keys": _json({"keys": [{"kty": "oct", "k": b64url(b"k" * 32)}]}),
            "timeout": timeout,
        }[failure]
    }


FAILURES = ["500", "html", "empty", "not-a-jwks", "only-unusable-keys", "timeout"]


@pytest.mark.case("KEY-05")
@pytest.mark.parametrize("failure", FAILURES)
def test_key_05_failed_refresh_keeps_the_last_good_keys(source, op, client, sign_in, sso_log, clock, failure):
    assert_signed_in(sign_in(), client)
    client.logout()
    clock.advance(COOLDOWN + 1)
    _break_jwks(op, failure)
    # An unknown kid causes a refresh attempt, which fails: the token fails closed.
    op.scenario["id_token_raw"] = by(SigningKey("honest-k9", pooled_rsa_key(4)))
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.unknown_key")
    assert jwks_fetches(op) == 2
    assert any("sso.jwks.fetch_failed" in r.getMessage() for r in sso_log.records)
    # The last good key set survived the failed refresh (PyJWKClient would have wiped it).
    del op.scenario["id_token_raw"]
    assert_signed_in(sign_in(), client)
    assert jwks_fetches(op) == 2


@pytest.mark.case("KEY-05")
@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_key_05_last_good_keys_are_kept_no_longer_than_max_age(
    source, op, client, sign_in, sso_log, clock, failure
):
    assert_signed_in(sign_in(), client)
    client.logout()
    clock.advance(DAY + 1)
    _break_jwks(op, failure)
    assert_rejected(sign_in(), op, client, sso_log, code="sso.jwks.unavailable", status=502)
    assert jwks_fetches(op) == 2


@pytest.mark.case("KEY-05")
@pytest.mark.parametrize("refresh", ["max-age", "rotation"])
def test_key_05_removed_key_refused_after_a_successful_refresh(
    source, op, client, sign_in, sso_log, clock, refresh
):
    kept, removed = op.keys[0], SigningKey("honest-k2", pooled_rsa_key(4))
    op.keys = [kept, removed]
    op.scenario["id_token_raw"] = by(removed)
    assert_signed_in(sign_in(), client)
    client.logout()
    op.keys = [kept]  # the provider revokes the key
    if refresh == "max-age":
        clock.advance(DAY + 1)
    else:
        clock.advance(COOLDOWN + 1)
        rotated = SigningKey("honest-k3", pooled_rsa_key(5))
        op.keys.append(rotated)
        op.scenario["id_token_raw"] = by(rotated)
        assert_signed_in(sign_in(), client)
        client.logout()
        op.scenario["id_token_raw"] = by(removed)
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.unknown_key")
    assert jwks_fetches(op) == 2
    del op.scenario["id_token_raw"]
    assert_signed_in(sign_in(), client)


# ---- KEY-06: which keys may verify --------------------------------------------------------------------
@pytest.mark.case("KEY-06")
def test_key_06_same_kid_on_an_rsa_and_an_ec_key(db, op, client, sign_in, sso_log):
    rsa_dup, ec_dup = SigningKey("dup", pooled_rsa_key(0)), ec_key("dup")
    op.keys = [rsa_dup, ec_dup]
    make_source(op, "honest", signing_algorithms="RS256 ES256")
    for key in (rsa_dup, ec_dup):
        op.scenario["id_token_raw"] = by(key)
        assert_signed_in(sign_in(), client)
        client.logout()
    # An EC signature under an RS256 header is checked against the RSA "dup" key only.
    op.scenario["id_token_raw"] = lambda o, claims: sign_compact(
        {"alg": "RS256", "kid": "dup"},
        claims,
        lambda data: jwt.get_algorithm_by_name("ES256").sign(data, ec_dup.private),
    )
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")


@pytest.mark.case("KEY-06")
def test_key_06_same_kid_with_different_alg(db, op, client, sign_in, sso_log):
    for_rs256, for_rs512 = SigningKey("dup", pooled_rsa_key(0)), SigningKey("dup", pooled_rsa_key(2), "RS512")
    op.keys = [for_rs256, for_rs512]
    make_source(op, "honest", signing_algorithms="RS256 RS512")
    op.scenario["id_token_raw"] = by(for_rs512)
    assert_signed_in(sign_in(), client)
    client.logout()
    # RS512 by the key published for RS256 only: the JWK's "alg" rules it out.
    op.scenario["id_token_raw"] = lambda o, claims: signed_with(
        "RS512", for_rs256.private, {"kid": "dup"}, claims
    )
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")


@pytest.mark.case("KEY-06")
def test_key_06_remote_oct_key_never_verifies(db, op, client, sign_in, sso_log):
    shared = b"published-symmetric-key-0123456789abcdef"
    oct_jwk = {"kty": "oct", "kid": "oct-1", "alg": "HS256", "use": "sig", "k": b64url(shared)}
    op.scenario["jwks_body"] = {"keys": [oct_jwk, op.keys[0].public_jwk()]}
    make_source(op, "honest", signing_algorithms="RS256 HS256", client_secret=STRONG_SECRET)
    assert_signed_in(sign_in(), client)  # the rest of the key set stays usable
    client.logout()
    assert any("sso.jwks.key_skipped" in r.getMessage() and "oct" in r.getMessage() for r in sso_log.records)
    op.scenario["id_token_raw"] = lambda o, claims: sign_compact(
        {"alg": "HS256", "kid": "oct-1"}, claims, lambda d: jwt.get_algorithm_by_name("HS256").sign(d, shared)
    )
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")


@pytest.mark.case("KEY-06")
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "on-refresh"])
def test_key_06_private_key_members_refuse_the_whole_set(source, op, client, sign_in, sso_log, clock, warm):
    private_jwk = {
        **jwt.algorithms.RSAAlgorithm.to_jwk(op.keys[0].private, as_dict=True),
        "kid": op.keys[0].kid,
        "use": "sig",
        "alg": "RS256",
    }
    if warm:
        assert_signed_in(sign_in(), client)
        client.logout()
        clock.advance(COOLDOWN + 1)
    op.scenario["jwks_body"] = {"keys": [private_jwk]}
    if warm:
        # A refresh that returns private keys is refused whole; the last good set stays.
        op.scenario["id_token_raw"] = by(SigningKey("honest-k9", pooled_rsa_key(4)))
        assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.unknown_key")
    else:
        assert_rejected(sign_in(), op, client, sso_log, code="sso.jwks.unavailable", status=502)
    assert any("sso.jwks.private_key" in r.getMessage() for r in sso_log.records)
    assert private_jwk["d"] not in sso_log.text


def _bad_point(key: SigningKey) -> dict[str, Any]:
    jwk = key.public_jwk()
    other = json.loads(
        jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    )
    return {**jwk, "y": other["y"]}  # x of one point, y of another: not on the curve


def _unusable(kind: str) -> tuple[SigningKey, dict[str, Any], str]:
    """Return (the key that signs, the JWK published for it, the source's algorithms)."""
    if kind == "weak-rsa-1024":
        key = SigningKey("weak", new_rsa_key(1024))
        return key, key.public_jwk(), "RS256"
    if kind == "use-enc":
        key = SigningKey("enc", pooled_rsa_key(2))
        return key, {**key.public_jwk(), "use": "enc"}, "RS256"
    if kind == "key_ops-encrypt":
        key = SigningKey("enc", pooled_rsa_key(2))
        return key, {**key.public_jwk(), "use": DROP, "key_ops": ["encrypt"]}, "RS256"
    if kind == "bad-ec-point":
        key = ec_key("bad-point")
        return key, _bad_point(key), "RS256 ES256"
    if kind == "ec-wrong-crv":
        key = ec_key("wrong-crv")
        return key, {**key.public_jwk(), "crv": "P-384"}, "RS256 ES256"
    if kind == "p384-key-for-es256":
        key = SigningKey("p384", ec.generate_private_key(ec.SECP384R1()), "ES256")
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.private.public_key()))
        return key, {**jwk, "kid": "p384", "use": "sig"}, "RS256 ES256"
    raise AssertionError(kind)


@pytest.mark.case("KEY-06")
@pytest.mark.parametrize(
    "kind",
    ["weak-rsa-1024", "use-enc", "key_ops-encrypt", "bad-ec-point", "ec-wrong-crv", "p384-key-for-es256"],
)
def test_key_06_unusable_key_never_verifies(db, op, client, sign_in, sso_log, kind):
    key, published, algorithms = _unusable(kind)
    published = {k: v for k, v in published.items() if v is not DROP}
    op.scenario["jwks_body"] = {"keys": [published, op.keys[0].public_jwk()]}
    make_source(op, "honest", signing_algorithms=algorithms)
    op.scenario["id_token_raw"] = lambda o, claims: signed_with(
        key.alg, key.private, {"kid": key.kid}, claims
    )
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.unknown_key")
    del op.scenario["id_token_raw"]
    assert_signed_in(sign_in(), client)  # the provider's good key still works
