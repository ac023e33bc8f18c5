"""Unit tests of django_sso.internal.jws: the compact-JWS gate shared by every token kind."""

from __future__ import annotations

import json
import time

import pytest

from django_sso.exceptions import ConfigurationError, TokenValidationError
from django_sso.internal import jws
from django_sso.models import Source
from tests.fakeop import FakeOP, SigningKey, b64url, hmac_signer, pooled_rsa_key, sign_compact

KEY = SigningKey("k1", pooled_rsa_key(0))
SECRET = "c" * 40


def _source(**fields: object) -> Source:
    """An unsaved source with an inline key set: no database, no network."""
    values = {"client_id": "rp-client", "client_secret": SECRET, "jwks": {"keys": [KEY.public_jwk()]}}
    return Source(**{**values, **fields})


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": "https://op.example",
        "aud": "rp-client",
        "sub": "s",
        "iat": now,
        "exp": now + 60,
        **overrides,
    }


def _rs256(claims: object, **header: object) -> str:
    return FakeOP("https://op.example/unit").mint(claims, header=header, key=KEY)


def _decode(token: str, *, kind: str = "sso.test", algorithms: tuple[str, ...] = ("RS256",), **kwargs):
    return jws.decode(
        kwargs.pop("source", None) or _source(),
        token,
        kind=kind,
        audience="rp-client",
        issuer="https://op.example",
        algorithms=list(algorithms),
        **kwargs,
    )


def _code(token: str, **kwargs: object) -> str:
    with pytest.raises(TokenValidationError) as caught:
        _decode(token, **kwargs)
    return caught.value.code


def test_valid_token():
    header, claims = _decode(_rs256(_claims()))
    assert header["kid"] == "k1"
    assert claims["sub"] == "s"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("", "sso.test.missing"),
        (None, "sso.test.missing"),
        ("a.b", "sso.test.malformed"),
        ("a.b.c.d", "sso.test.malformed"),
        ("%%%.e30.x", "sso.test.malformed"),
        (b64url(b'"JWT"') + ".e30.x", "sso.test.malformed"),
        (b64url(json.dumps({"alg": "RS256", "kid": 7}).encode()) + ".e30.x", "sso.test.bad_kid"),
        (b64url(json.dumps({"alg": "RS256", "kid": "k" * 257}).encode()) + ".e30.x", "sso.test.bad_kid"),
    ],
    ids=["empty", "none", "2-segments", "4-segments", "not-base64", "not-object", "kid-number", "kid-long"],
)
def test_read_header_refuses(token, code):
    with pytest.raises(TokenValidationError) as caught:
        jws.read_header(token, "sso.test")
    assert caught.value.code == code


@pytest.mark.case("IDT-13")
@pytest.mark.parametrize("name", sorted(jws.FORBIDDEN_HEADERS))
def test_every_forbidden_header_is_refused(name):
    assert _code(_rs256(_claims(), **{name: "x"})) == "sso.test.forbidden_header"


@pytest.mark.case("IDT-13")
def test_size_cap_applies_before_parsing(settings):
    settings.DJANGO_SSO_MAX_TOKEN_BYTES = 100
    assert _code("!" * 101) == "sso.test.too_large"


@pytest.mark.case("IDT-03")
def test_none_is_not_a_known_algorithm():
    assert not {"none", "None", "NONE"} & jws.KNOWN_ALGORITHMS
    token = sign_compact({"alg": "none"}, _claims(), lambda d: b"")
    assert _code(token, algorithms=("none", "RS256")) == "sso.test.alg_not_allowed"


@pytest.mark.case("IDT-03")
def test_known_algorithm_outside_the_allow_list():
    assert _code(_rs256(_claims(), alg="RS512"), algorithms=("RS256",)) == "sso.test.alg_not_allowed"


@pytest.mark.case("IDT-02")
def test_hmac_uses_the_client_secret_and_never_the_key_set():
    # No JWKS and no JWKS URL: an asymmetric token cannot even look for a key...
    source = _source(jwks=None)
    with pytest.raises(ConfigurationError):
        _decode(_rs256(_claims()), source=source)
    # ... while HS256 verifies with the client secret alone.
    token = sign_compact({"alg": "HS256"}, _claims(), hmac_signer(SECRET.encode()))
    assert _decode(token, source=source, algorithms=("HS256",))[1]["sub"] == "s"


@pytest.mark.case("IDT-02")
def test_hmac_refuses_a_short_secret_even_when_the_token_matches_it():
    source = _source(client_secret="k" * 31)
    token = sign_compact({"alg": "HS256"}, _claims(), hmac_signer(b"k" * 31))
    assert _code(token, source=source, algorithms=("HS256",)) == "sso.test.weak_hmac_secret"


@pytest.mark.case("IDT-10")
@pytest.mark.parametrize("name", jws.NUMERIC_DATE_CLAIMS)
@pytest.mark.parametrize(
    "value", ["1700000000", True, None, [1]], ids=["numeric-string", "true", "null", "array"]
)
def test_numeric_dates_must_be_json_numbers(name, value):
    claims = _claims(**{name: value})
    if name != "exp":
        claims["exp"] = int(time.time()) + 60
    assert _code(_rs256(claims)).startswith("sso.test.")


@pytest.mark.case("IDT-10")
def test_numeric_date_may_be_a_float():
    now = time.time()
    assert _decode(_rs256(_claims(iat=now, exp=now + 60.5, nbf=now)))[1]["exp"] == now + 60.5


def test_required_claims_are_the_callers():
    token = _rs256({k: v for k, v in _claims().items() if k != "iat"})
    assert _code(token) == "sso.test.missing_claim"
    assert _decode(token, required=("exp", "iss", "sub"))[1]["sub"] == "s"


def test_codes_carry_the_callers_kind():
    assert _code(_rs256(_claims(aud="other")), kind="sso.bearer") == "sso.bearer.aud_mismatch"


@pytest.mark.parametrize(
    ("typ", "normalised"),
    [(None, ""), ("JWT", "jwt"), ("application/AT+JWT", "at+jwt"), ("logout+jwt", "logout+jwt")],
)
def test_typ_of(typ, normalised):
    header = {} if typ is None else {"typ": typ}
    assert jws.typ_of(header) == normalised


def test_typ_of_refuses_a_non_string_with_the_callers_kind():
    with pytest.raises(TokenValidationError) as caught:
        jws.typ_of({"typ": 1}, "sso.id_token")
    assert caught.value.code == "sso.id_token.bad_typ"
