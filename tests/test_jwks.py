"""Unit tests of django_sso.internal.jwks: which keys are usable, which are chosen, where they come from."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from django_sso.exceptions import ConfigurationError, ProviderError
from django_sso.internal import jwks
from django_sso.models import Source
from tests.fakeop import SigningKey, b64url, ec_key, new_rsa_key, pooled_rsa_key

RSA = SigningKey("rsa", pooled_rsa_key(0))


def _inline(*keys: dict) -> Source:
    return Source(client_id="rp-client", jwks={"keys": list(keys)})


def _kids(keys: list[jwt.PyJWK]) -> list[str | None]:
    return [k.key_id for k in keys]


def _without_use(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k != "use"}


# ---- parse_jwks -------------------------------------------------------------------------------
@pytest.mark.parametrize("document", [None, [], {"keys": {}}, {"keys": "x"}, {"no": "keys"}])
def test_not_a_jwk_set(document):
    with pytest.raises(ConfigurationError) as caught:
        jwks.parse_jwks(document)
    assert caught.value.code == "sso.jwks.invalid"


@pytest.mark.case("KEY-06")
@pytest.mark.parametrize(
    "private",
    [
        jwt.algorithms.RSAAlgorithm.to_jwk(pooled_rsa_key(0), as_dict=True),
        jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True),
        {**RSA.public_jwk(), "p": "AQAB"},
    ],
    ids=["rsa-d", "ec-d", "rsa-p-only"],
)
def test_private_members_refuse_the_whole_set(private):
    with pytest.raises(ConfigurationError) as caught:
        jwks.parse_jwks({"keys": [RSA.public_jwk(), private]})
    assert caught.value.code == "sso.jwks.private_key"


@pytest.mark.case("KEY-06")
def test_unusable_keys_are_dropped_and_the_rest_kept(caplog):
    good_ec = ec_key("ec")
    bad_point = {**good_ec.public_jwk(), "kid": "bad-point", "y": ec_key().public_jwk()["y"]}
    keys = jwks.parse_jwks(
        {
            "keys": [
                "not an object",
                {"kty": "oct", "kid": "oct", "k": b64url(b"s" * 32)},
                {**SigningKey("enc", pooled_rsa_key(2)).public_jwk(), "use": "enc"},
                {**SigningKey("ops", pooled_rsa_key(3)).public_jwk(), "key_ops": ["encrypt"]},
                SigningKey("weak", new_rsa_key(1024)).public_jwk(),
                bad_point,
                {**good_ec.public_jwk(), "kid": "wrong-crv", "crv": "P-384"},
                {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
                RSA.public_jwk(),
                good_ec.public_jwk(),
                {**_without_use(SigningKey("verify", pooled_rsa_key(4)).public_jwk()), "key_ops": ["verify"]},
            ]
        }
    )
    assert _kids(keys) == ["rsa", "ec", "verify"]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for kid in ("oct", "weak", "bad-point", "wrong-crv", "no-modulus"):
        assert f"kid={kid!r}" in skipped


# ---- selection ----------------------------------------------------------------------------------
@pytest.mark.case("KEY-06")
def test_selection_by_kid_kty_alg_and_crv():
    rsa_dup = SigningKey("dup", pooled_rsa_key(0)).public_jwk()
    ec_dup = ec_key("dup").public_jwk()
    rs512 = SigningKey("dup", pooled_rsa_key(2), "RS512").public_jwk()
    p384 = {
        **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    }
    source = _inline(rsa_dup, ec_dup, rs512, {**p384, "kid": "dup"})
    assert [k._jwk_data["kty"] for k in jwks.keys_for(source, "dup", "RS256")] == ["RSA"]
    assert [k._jwk_data.get("alg") for k in jwks.keys_for(source, "dup", "RS512")] == ["RS512"]
    assert [k._jwk_data["crv"] for k in jwks.keys_for(source, "dup", "ES256")] == ["P-256"]
    assert [k._jwk_data["crv"] for k in jwks.keys_for(source, "dup", "ES384")] == ["P-384"]
    assert jwks.keys_for(source, "dup", "PS256") == []  # the RSA keys name another alg
    assert jwks.keys_for(source, "other", "RS256") == []


@pytest.mark.case("KEY-02")
def test_without_kid_at_most_five_fitting_keys():
    source = _inline(
        *(ec_key(f"ec{i}").public_jwk() for i in range(3)),
        *(SigningKey(f"rsa{i}", pooled_rsa_key(i)).public_jwk() for i in range(7)),
    )
    assert _kids(jwks.keys_for(source, None, "RS256")) == [f"rsa{i}" for i in range(5)]
    assert _kids(jwks.keys_for(source, None, "ES256")) == ["ec0", "ec1", "ec2"]


@pytest.mark.case("IDT-14")
def test_keys_come_from_the_source_only():
    mine, theirs = SigningKey("same", pooled_rsa_key(0)), SigningKey("same", pooled_rsa_key(1))
    a, b = _inline(mine.public_jwk()), _inline(theirs.public_jwk())
    assert (
        jwks.keys_for(a, "same", "RS256")[0].key.public_numbers()
        == mine.private.public_key().public_numbers()
    )
    assert (
        jwks.keys_for(b, "same", "RS256")[0].key.public_numbers()
        == theirs.private.public_key().public_numbers()
    )


def test_a_source_without_keys_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as caught:
        jwks.keys_for(Source(client_id="c"), "k", "RS256")
    assert caught.value.code == "sso.jwks.missing"


# ---- fetching -------------------------------------------------------------------------------------
@pytest.mark.case("KEY-04")
def test_another_worker_reuses_the_shared_key_set(source, op):
    assert jwks.keys_for(source, op.keys[0].kid, "RS256")
    jwks.clear()  # a second process: nothing in its memory, the key set in Django's cache
    assert jwks.keys_for(source, op.keys[0].kid, "RS256")
    assert [r.path for r in op.requests].count("/honest/jwks") == 1


@pytest.mark.case("KEY-05")
def test_a_cold_failed_fetch_is_a_broken_provider(source, op):
    op.scenario["respond"] = {"/jwks": (503, {"Content-Type": "text/plain"}, b"down")}
    with pytest.raises(ProviderError) as caught:
        jwks.keys_for(source, op.keys[0].kid, "RS256")
    assert caught.value.code == "sso.jwks.unavailable"
