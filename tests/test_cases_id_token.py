"""RP-CASES E (IDT-01..15): every kind of bad ID token, driven through whole sign-ins.

Each rejection is checked the way RP-CASES defines "Reject": no login, the flow gone from the
session, no call to the provider after the failing step, the generic error page with 400/502, a
machine-readable reason logged at WARNING by ``django_sso``, and no token, code or secret in any
log line (:func:`assert_rejected`, shared with the KEY and UI case files, built on
``tests/rejections.py``).
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from django.test import Client

from django_sso.exceptions import TokenValidationError
from django_sso.internal import discovery, id_token, jwks, jws
from django_sso.models import Identity
from tests import rejections
from tests.conftest import SignIn, make_source
from tests.fakeop import (
    DROP,
    FakeNetworkAdapter,
    FakeOP,
    SigningKey,
    b64url,
    ec_key,
    hmac_signer,
    pooled_rsa_key,
    sign_compact,
)

#: A fixed "now" for the leeway boundaries (IDT-09/10).
FROZEN = 1_800_000_000
LEEWAY = 60
MAX_AGE = 600
STRONG_SECRET = "s" * 16 + "-0123456789abcdef-strong"  # 40 bytes


# ---- helpers shared with tests/test_cases_keys.py and tests/test_cases_userinfo.py -------------
def op_paths(op: FakeOP) -> list[str]:
    """Return the paths (relative to the issuer) of every request the provider received."""
    prefix = urlsplit(op.base).path
    return [r.path.removeprefix(prefix) for r in op.requests]


def assert_rejected(
    result: SignIn,
    op: FakeOP,
    client: Client,
    log: pytest.LogCaptureFixture,
    *,
    code: str,
    status: int = 400,
    after: str = "/token",
) -> None:
    """Assert RP-CASES' "Reject" for a sign-in that failed once ``after`` was called.

    :func:`tests.rejections.assert_rejected` checks the page, the login, the logged reason and
    the secrets; on top, every flow of the session is gone and the provider heard nothing after
    ``after`` but, after a token response, the key set read to check its signature.
    """
    rejections.assert_rejected(
        result.response,
        client,
        log,
        status=status,
        code=code,
        ops=[op],
        state=result.authorize_params["state"],
        token_calls=len(rejections.calls(op, "/token")),
        userinfo_calls=len(rejections.calls(op, "/userinfo")),
        secrets={result.authorize_params["state"], result.authorize_params["nonce"]},
    )
    assert not rejections.pending_flows(client), "the state, nonce and verifier must be gone"
    paths = op_paths(op)
    assert after in paths, paths
    tail = paths[len(paths) - paths[::-1].index(after) :]
    allowed = {"/jwks"} if after == "/token" else set()
    assert set(tail) <= allowed, f"provider called after {after}: {tail}"


def assert_signed_in(result: SignIn, client: Client) -> None:
    assert result.response.status_code == 303, result.response.content[:500]
    assert "_auth_user_id" in client.session


def flip_signature(token: str) -> str:
    """Return ``token`` with one bit of its signature flipped (the base64 stays canonical)."""
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


def signed_with(alg: str, private: Any, header: dict[str, Any], claims: Any) -> str:
    """Sign by hand with any algorithm PyJWT knows (``FakeOP.mint`` signs RS256/ES256 only)."""
    algorithm = jwt.get_algorithm_by_name(alg)
    return sign_compact({"alg": alg, **header}, claims, lambda data: algorithm.sign(data, private))


def hs256(secret: str | bytes, header: dict[str, Any] | None = None) -> Any:
    """Return an ``id_token_raw`` knob: HS256 over the claims with ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return lambda op, claims: sign_compact(
        {"alg": "HS256", "typ": "JWT", **(header or {})}, claims, hmac_signer(key)
    )


def sign_in_with(client: Client, op: FakeOP, params: dict[str, str], slug: str = "honest") -> SignIn:
    """Drive a sign-in whose login POST carries per-request parameters (``max_age``...)."""
    start = client.post(f"/sso/{slug}/login/", params)
    assert start.status_code == 302, start.content
    callback_url = op.authorize(start["Location"])
    parts = urlsplit(callback_url)
    return SignIn(start, start["Location"], callback_url, client.get(f"{parts.path}?{parts.query}"))


# ---- IDT-01: signatures ---------------------------------------------------------------------
def _configure(op: FakeOP, alg: str) -> None:
    if alg == "ES256":
        op.keys = [ec_key("honest-ec")]
    make_source(op, "honest", signing_algorithms=alg)


@pytest.mark.case("IDT-01")
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_idt_01_valid_signature_accepted(db, op, client, sign_in, alg):
    _configure(op, alg)
    assert_signed_in(sign_in(), client)


@pytest.mark.case("IDT-01")
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_idt_01_flipped_signature_byte(db, op, client, sign_in, sso_log, alg):
    _configure(op, alg)
    op.scenario["id_token_raw"] = lambda o, claims: flip_signature(o.mint(claims))
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")


@pytest.mark.case("IDT-01")
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_idt_01_other_key_with_the_same_kid(db, op, client, sign_in, sso_log, alg):
    _configure(op, alg)
    kid = op.keys[0].kid
    impostor = SigningKey(kid, pooled_rsa_key(2)) if alg == "RS256" else ec_key(kid)
    op.scenario["id_token_raw"] = lambda o, claims: o.mint(claims, key=impostor)
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")


# ---- IDT-02: HMAC with the client secret ----------------------------------------------------
@pytest.mark.case("IDT-02")
@pytest.mark.parametrize("secret", [STRONG_SECRET, "k" * 32])
def test_idt_02_hs256_accepted_when_configured_with_a_long_secret(db, op, client, sign_in, secret):
    make_source(op, "honest", signing_algorithms="HS256", client_secret=secret)
    op.scenario["id_token_raw"] = hs256(secret)
    assert_signed_in(sign_in(), client)
    assert "/jwks" not in op_paths(op), "an HMAC token never needs the provider's public keys"


@pytest.mark.case("IDT-02")
def test_idt_02_hs256_tampered(db, op, client, sign_in, sso_log):
    make_source(op, "honest", signing_algorithms="HS256", client_secret=STRONG_SECRET)
    valid = hs256(STRONG_SECRET)
    op.scenario["id_token_raw"] = lambda o, claims: flip_signature(valid(o, claims))
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.bad_signature")


@pytest.mark.case("IDT-02")
def test_idt_02_hs256_with_an_rs256_source(db, op, client, sign_in, sso_log):
    make_source(op, "honest", client_secret=STRONG_SECRET)  # signing_algorithms defaults to RS256
    op.scenario["id_token_raw"] = hs256(STRONG_SECRET)
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.alg_not_allowed")


@pytest.mark.case("IDT-02")
@pytest.mark.parametrize("secret", ["", "secret", "k" * 31], ids=["empty", "guessable", "31-bytes"])
def test_idt_02_hs256_with_an_empty_or_short_secret(db, op, client, sign_in, sso_log, secret):
    make_source(op, "honest", signing_algorithms="HS256", client_secret=secret)
    op.scenario["id_token_raw"] = hs256(secret)
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.weak_hmac_secret")


# ---- IDT-03: alg none and algorithms outside the source's allow-list -------------------------
def _rs(alg: str) -> Any:
    algorithm = jwt.get_algorithm_by_name("RS256")
    return lambda op, claims: sign_compact(
        {"alg": alg, "typ": "JWT", "kid": op.keys[0].kid},
        claims,
        lambda data: algorithm.sign(data, op.keys[0].private),
    )


@pytest.mark.case("IDT-03")
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            lambda op, claims: sign_compact({"alg": "none", "typ": "JWT"}, claims, lambda d: b""),
            id="none-empty-signature",
        ),
        pytest.param(_rs("none"), id="none-with-a-signature"),
        pytest.param(_rs("None"), id="None"),
        pytest.param(_rs("NONE"), id="NONE"),
        pytest.param(
            lambda op, claims: sign_compact({"alg": "NONE"}, claims, lambda d: b""), id="NONE-empty"
        ),
        pytest.param(
            lambda op, claims: signed_with("PS256", op.keys[0].private, {"kid": op.keys[0].kid}, claims),
            id="PS256",
        ),
        pytest.param(
            lambda op, claims: signed_with("RS512", op.keys[0].private, {"kid": op.keys[0].kid}, claims),
            id="RS512",
        ),
        pytest.param(_rs(["RS256"]), id="alg-array"),
    ],
)
def test_idt_03_alg_none_and_unlisted_algorithms(db, op, client, sign_in, sso_log, raw):
    make_source(op, "honest")
    op.scenario["id_token_raw"] = raw
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.alg_not_allowed")


@pytest.mark.case("IDT-03")
@pytest.mark.parametrize("configured", ["RS256", ""])
@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_idt_03_discovery_metadata_cannot_widen_the_allow_list(
    db, op, client, sign_in, sso_log, configured, alg
):
    metadata = {**op.discovery(), "id_token_signing_alg_values_supported": ["none", "HS256", "RS256"]}
    make_source(
        op, "honest", signing_algorithms=configured, provider_metadata=metadata, client_secret=STRONG_SECRET
    )
    if alg == "none":
        op.scenario["id_token_raw"] = lambda o, claims: sign_compact({"alg": "none"}, claims, lambda d: b"")
    else:
        op.scenario["id_token_raw"] = hs256(STRONG_SECRET)
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.alg_not_allowed")


@pytest.mark.case("IDT-03")
def test_idt_03_discovery_picks_only_safe_algorithms(db, op):
    source = make_source(op, "honest", signing_algorithms="")
    discovery.apply_metadata(
        source, {**op.discovery(), "id_token_signing_alg_values_supported": ["none", "HS256"]}
    )
    assert source.signing_algorithms == "RS256"
    assert id_token.allowed_algorithms(source) == ["RS256"]


# ---- IDT-04: algorithm confusion with the provider's public key as an HMAC secret ------------
def _public_encodings(key: SigningKey) -> dict[str, bytes]:
    public = key.private.public_key()
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    spki_pem = public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo)
    encodings = {
        "spki-pem": spki_pem,
        "spki-pem-whitespace": b"  " + spki_pem.replace(b"\n", b"\r\n") + b"\n\n",
        "spki-pem-no-newline": spki_pem.rstrip(b"\n"),
        "spki-der": public.public_bytes(enc.DER, fmt.SubjectPublicKeyInfo),
        "openssh": public.public_bytes(enc.OpenSSH, fmt.OpenSSH),
        "jwk-json": json.dumps(key.public_jwk()).encode(),
        "jwk-json-compact": json.dumps(key.public_jwk(), separators=(",", ":")).encode(),
    }
    if key.alg == "RS256":
        encodings["pkcs1-pem"] = public.public_bytes(enc.PEM, fmt.PKCS1)
        encodings["pkcs1-der"] = public.public_bytes(enc.DER, fmt.PKCS1)
    else:
        encodings["x962-point"] = public.public_bytes(enc.X962, fmt.UncompressedPoint)
    return encodings


RSA_ENCODINGS = [
    "pkcs1-pem",
    "pkcs1-der",
    "spki-pem",
    "spki-pem-whitespace",
    "spki-pem-no-newline",
    "spki-der",
    "openssh",
    "jwk-json",
    "jwk-json-compact",
]
EC_ENCODINGS = ["spki-pem", "spki-pem-whitespace", "spki-der", "openssh", "x962-point", "jwk-json"]


@pytest.mark.case("IDT-04")
@pytest.mark.parametrize(
    ("algorithms", "code"),
    [
        ("{alg}", "sso.id_token.alg_not_allowed"),
        # Even a source that allows HS256 verifies HMAC with its client secret only, never with
        # key material from the JWKS.
        ("{alg} HS256", "sso.id_token.bad_signature"),
    ],
    ids=["asymmetric-source", "source-also-allowing-HS256"],
)
@pytest.mark.parametrize(
    ("alg", "encoding"),
    [("RS256", e) for e in RSA_ENCODINGS] + [("ES256", e) for e in EC_ENCODINGS],
)
def test_idt_04_hs256_keyed_with_the_public_key(
    db, op, client, sign_in, sso_log, alg, encoding, algorithms, code
):
    if alg == "ES256":
        op.keys = [ec_key("honest-ec")]
    source = make_source(
        op, "honest", signing_algorithms=algorithms.format(alg=alg), client_secret=STRONG_SECRET
    )
    key = op.keys[0]
    secret = _public_encodings(key)[encoding]
    # The key set is cached, as it would be on a busy site, so a confused verifier could use it.
    assert jwks.keys_for(source, key.kid, alg)
    op.scenario["id_token_raw"] = hs256(secret, {"kid": key.kid})
    assert_rejected(sign_in(), op, client, sso_log, code=code)


# ---- IDT-05: issuer ---------------------------------------------------------------------------
@pytest.mark.case("IDT-05")
@pytest.mark.parametrize(
    ("iss", "code"),
    [
        ("https://attacker.example", "sso.id_token.iss_mismatch"),
        (DROP, "sso.id_token.missing_claim"),
        ("https://op.example/honest.evil", "sso.id_token.iss_mismatch"),
        ("https://op", "sso.id_token.iss_mismatch"),
        ("https://op.example/honest/", "sso.id_token.iss_mismatch"),
        ("https://OP.example/honest", "sso.id_token.iss_mismatch"),
        ("https://op.example:443/honest", "sso.id_token.iss_mismatch"),
        ("https://op.example/attacker", "sso.id_token.iss_mismatch"),
        (["https://op.example/honest"], "sso.id_token.iss_mismatch"),
        (42, "sso.id_token.iss_mismatch"),
        ({"iss": "https://op.example/honest"}, "sso.id_token.iss_mismatch"),
        (None, "sso.id_token.missing_claim"),
    ],
    ids=[
        "wrong",
        "missing",
        "suffix",
        "prefix",
        "trailing-slash",
        "case",
        "port",
        "other-provider",
        "array",
        "number",
        "object",
        "null",
    ],
)
def test_idt_05_issuer_mismatch(source, op, client, sign_in, sso_log, iss, code):
    op.scenario["id_token"] = {"iss": iss}
    assert_rejected(sign_in(), op, client, sso_log, code=code)


# ---- IDT-06: audience -------------------------------------------------------------------------
@pytest.mark.case("IDT-06")
@pytest.mark.parametrize(
    ("aud", "code"),
    [
        ("other-client", "sso.id_token.aud_mismatch"),
        (DROP, "sso.id_token.missing_claim"),
        ("https://op.example/honest", "sso.id_token.aud_mismatch"),
        ("", "sso.id_token.missing_claim"),
        ("RP-CLIENT", "sso.id_token.aud_mismatch"),
        ([], "sso.id_token.missing_claim"),
    ],
    ids=["other-client", "missing", "issuer", "empty", "case", "empty-list"],
)
def test_idt_06_audience_mismatch(source, op, client, sign_in, sso_log, aud, code):
    op.scenario["id_token"] = {"aud": aud}
    assert_rejected(sign_in(), op, client, sso_log, code=code)


# ---- IDT-07: several audiences and azp ---------------------------------------------------------
@pytest.mark.case("IDT-07")
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"aud": ["rp-client", "untrusted-client"]}, "sso.id_token.aud_mismatch"),
        ({"aud": ["rp-client", "untrusted-client"], "azp": "rp-client"}, "sso.id_token.aud_mismatch"),
        ({"aud": "rp-client", "azp": "other"}, "sso.id_token.azp_mismatch"),
        ({"aud": ["rp-client"], "azp": "other"}, "sso.id_token.azp_mismatch"),
        ({"aud": ["rp-client", 7]}, "sso.id_token.aud_mismatch"),
    ],
    ids=["untrusted-extra", "untrusted-extra-with-azp", "azp-other", "array-azp-other", "non-string-member"],
)
def test_idt_07_untrusted_audience_or_azp(source, op, client, sign_in, sso_log, claims, code):
    op.scenario["id_token"] = claims
    assert_rejected(sign_in(), op, client, sso_log, code=code)


@pytest.mark.case("IDT-07")
@pytest.mark.parametrize(
    ("claims", "trusted"),
    [
        ({"aud": ["rp-client"]}, ""),
        ({"aud": ["rp-client"], "azp": "rp-client"}, ""),
        ({"aud": ["rp-client", "api.example"], "azp": "rp-client"}, "api.example"),
    ],
    ids=["array-of-one", "array-with-azp", "trusted-extra-audience"],
)
def test_idt_07_audience_array_accepted(db, op, client, sign_in, claims, trusted):
    make_source(op, "honest", trusted_audiences=trusted)
    op.scenario["id_token"] = claims
    assert_signed_in(sign_in(), client)


# ---- IDT-08: subject ----------------------------------------------------------------------------
@pytest.mark.case("IDT-08")
@pytest.mark.parametrize(
    ("sub", "code"),
    [
        (DROP, "sso.id_token.missing_claim"),
        ("", "sso.id_token.bad_sub"),
        (12345, "sso.id_token.invalid"),
        ({"id": "alice-sub"}, "sso.id_token.invalid"),
        (["alice-sub"], "sso.id_token.invalid"),
        ("a" * 256, "sso.id_token.bad_sub"),
    ],
    ids=["missing", "empty", "number", "object", "array", "256-chars"],
)
def test_idt_08_bad_subject(source, op, client, sign_in, sso_log, sub, code):
    op.scenario["id_token"] = {"sub": sub}
    op.scenario["userinfo"] = {"sub": sub}
    assert_rejected(sign_in(), op, client, sso_log, code=code)
    assert not Identity.objects.exists()


@pytest.mark.case("IDT-08")
def test_idt_08_subject_is_exact_and_case_sensitive(source, op, client, sign_in):
    op.scenario["id_token"] = op.scenario["userinfo"] = {"sub": "A" * 255, "email": "upper@example.com"}
    assert_signed_in(sign_in(), client)
    client.logout()
    op.scenario["id_token"] = op.scenario["userinfo"] = {"sub": "a" * 255, "email": "lower@example.com"}
    assert_signed_in(sign_in(), client)
    assert sorted(Identity.objects.values_list("subject", flat=True)) == ["A" * 255, "a" * 255]
    assert Identity.objects.values("user").distinct().count() == 2


# ---- IDT-09: iat ----------------------------------------------------------------------------------
@pytest.mark.case("IDT-09")
@pytest.mark.parametrize(
    ("iat", "code"),
    [
        (DROP, "sso.id_token.missing_claim"),
        (FROZEN - 7 * 24 * 3600, "sso.id_token.too_old"),
        (FROZEN + 600, "sso.id_token.not_yet_valid"),
        ("yesterday", "sso.id_token.invalid"),
        (str(FROZEN), "sso.id_token.invalid"),
        (True, "sso.id_token.invalid"),
        (FROZEN - LEEWAY - MAX_AGE - 1, "sso.id_token.too_old"),
        (FROZEN + LEEWAY + 1, "sso.id_token.not_yet_valid"),
    ],
    ids=[
        "missing",
        "week-old",
        "10-min-future",
        "not-a-number",
        "numeric-string",
        "boolean",
        "max-age-plus-leeway-plus-1s",
        "future-leeway-plus-1s",
    ],
)
@time_machine.travel(FROZEN, tick=False)
def test_idt_09_bad_issued_at(source, op, client, sign_in, sso_log, iat, code):
    op.scenario["id_token"] = {"iat": iat}
    assert_rejected(sign_in(), op, client, sso_log, code=code)


@pytest.mark.case("IDT-09")
@pytest.mark.parametrize(
    "iat",
    [FROZEN - LEEWAY - MAX_AGE + 1, FROZEN - LEEWAY - MAX_AGE, FROZEN + LEEWAY - 1, float(FROZEN)],
    ids=["max-age-plus-leeway-minus-1s", "max-age-plus-leeway", "future-leeway-minus-1s", "float"],
)
@time_machine.travel(FROZEN, tick=False)
def test_idt_09_issued_at_within_bounds_accepted(source, op, client, sign_in, iat):
    op.scenario["id_token"] = {"iat": iat}
    assert_signed_in(sign_in(), client)


# ---- IDT-10: exp and nbf --------------------------------------------------------------------------
@pytest.mark.case("IDT-10")
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": FROZEN - LEEWAY - 1}, "sso.id_token.expired"),
        ({"exp": FROZEN - LEEWAY}, "sso.id_token.expired"),
        ({"exp": DROP}, "sso.id_token.missing_claim"),
        ({"exp": "9999999999"}, "sso.id_token.invalid"),
        ({"exp": "soon"}, "sso.id_token.invalid"),
        ({"exp": True}, "sso.id_token.expired"),  # PyJWT reads true as 1 (1970)
        ({"nbf": FROZEN + LEEWAY + 1}, "sso.id_token.not_yet_valid"),
        ({"nbf": FROZEN + 3600}, "sso.id_token.not_yet_valid"),
        ({"nbf": str(FROZEN)}, "sso.id_token.invalid"),
    ],
    ids=[
        "past-leeway-plus-1s",
        "past-exactly-leeway",
        "missing",
        "numeric-string",
        "string",
        "boolean",
        "nbf-leeway-plus-1s",
        "nbf-hour-ahead",
        "nbf-numeric-string",
    ],
)
@time_machine.travel(FROZEN, tick=False)
def test_idt_10_expired_or_not_yet_valid(source, op, client, sign_in, sso_log, claims, code):
    op.scenario["id_token"] = claims
    assert_rejected(sign_in(), op, client, sso_log, code=code)


@pytest.mark.case("IDT-10")
@pytest.mark.parametrize(
    "claims",
    [{"exp": FROZEN - LEEWAY + 1}, {"nbf": FROZEN + LEEWAY - 1}, {"exp": FROZEN + 1, "nbf": FROZEN}],
    ids=["exp-past-leeway-minus-1s", "nbf-leeway-minus-1s", "plain"],
)
@time_machine.travel(FROZEN, tick=False)
def test_idt_10_within_leeway_accepted(source, op, client, sign_in, claims):
    op.scenario["id_token"] = claims
    assert_signed_in(sign_in(), client)


@pytest.mark.case("IDT-10")
@pytest.mark.parametrize(("configured", "effective"), [(5, 5), (1000, 300)], ids=["5s", "capped-at-300s"])
@time_machine.travel(FROZEN, tick=False)
def test_idt_10_configured_leeway_and_its_cap(
    source, op, client, sign_in, sso_log, settings, configured, effective
):
    settings.DJANGO_SSO_LEEWAY = configured
    op.scenario["id_token"] = {"exp": FROZEN - effective + 1}
    assert_signed_in(sign_in(), client)
    client.logout()
    op.scenario["id_token"] = {"exp": FROZEN - effective - 1}
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.expired")


# ---- IDT-11: nonce ---------------------------------------------------------------------------------
@pytest.mark.case("IDT-11")
@pytest.mark.parametrize(
    "claims",
    [
        {"nonce": "not-the-nonce-this-flow-sent"},
        {"nonce": DROP},
        {"nonce": DROP, "nonce_supported": False},
        {"nonce": ""},
        {"nonce": None},
        {"nonce": ["x"]},
    ],
    ids=["wrong", "missing", "nonce_supported-false", "empty", "null", "array"],
)
def test_idt_11_nonce_mismatch(source, op, client, sign_in, sso_log, claims):
    op.scenario["id_token"] = claims
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.nonce_mismatch")


@pytest.mark.case("IDT-11")
def test_idt_11_replayed_id_token(source, op, client, sign_in, sso_log):
    op.scenario["id_token"] = {"jti": "id-token-1"}
    assert_signed_in(sign_in(), client)
    replayed = op.issued[-1]  # the access token comes first, then the ID token
    assert replayed.count(".") == 2
    client.logout()
    op.scenario["id_token_raw"] = lambda o, claims: replayed
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.nonce_mismatch")


# ---- IDT-12: max_age/auth_time, acr, at_hash --------------------------------------------------------
@pytest.mark.case("IDT-12")
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({}, "sso.id_token.auth_time_missing"),
        ({"auth_time": "recently"}, "sso.id_token.auth_time_missing"),
        ({"auth_time": True}, "sso.id_token.auth_time_missing"),
        ({"auth_time": int(time.time()) - 2 * 3600}, "sso.id_token.auth_time_too_old"),
    ],
    ids=["missing", "string", "boolean", "two-hours-old"],
)
def test_idt_12_max_age_without_fresh_auth_time(source, op, client, sso_log, claims, code):
    op.scenario["id_token"] = claims
    result = sign_in_with(client, op, {"max_age": "300"})
    assert result.authorize_params["max_age"] == "300"
    assert_rejected(result, op, client, sso_log, code=code)


@pytest.mark.case("IDT-12")
def test_idt_12_max_age_with_fresh_auth_time_accepted(source, op, client):
    op.scenario["id_token"] = {"auth_time": int(time.time()) - 100}
    assert_signed_in(sign_in_with(client, op, {"max_age": "300"}), client)


def _latest_access_token(op: FakeOP) -> str:
    return list(op.access_tokens)[-1]


@pytest.mark.case("IDT-12")
@pytest.mark.parametrize("at_hash", ["wrong", 42, "right-hash-of-another-token"])
def test_idt_12_wrong_at_hash(source, op, client, sign_in, sso_log, at_hash):
    def raw(o: FakeOP, claims: dict[str, Any]) -> str:
        value = at_hash
        if value == "right-hash-of-another-token":
            value = id_token.token_hash("at-someone-else", "RS256")
        return o.mint({**claims, "at_hash": value})

    op.scenario["id_token_raw"] = raw
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.at_hash_mismatch")


@pytest.mark.case("IDT-12")
def test_idt_12_right_at_hash_accepted(source, op, client, sign_in):
    op.scenario["id_token_raw"] = lambda o, claims: o.mint(
        {**claims, "at_hash": id_token.token_hash(_latest_access_token(o), "RS256")}
    )
    assert_signed_in(sign_in(), client)


class RequireAcrAdapter(FakeNetworkAdapter):
    """A site that requires a phishing-resistant authentication context (the adapter's veto)."""

    def is_sign_in_allowed(self, request: Any, source: Any, claims: dict[str, Any]) -> bool:
        return claims.get("acr") == "phr"


@pytest.mark.case("IDT-12")
@pytest.mark.parametrize("acr", [DROP, "pwd"], ids=["missing", "lower"])
def test_idt_12_acr_required_by_the_site(source, op, client, sso_log, settings, acr):
    settings.DJANGO_SSO_ADAPTER = "tests.test_cases_id_token.RequireAcrAdapter"
    op.scenario["id_token"] = {"acr": acr}
    result = sign_in_with(client, op, {"acr_values": "phr"})
    assert result.authorize_params["acr_values"] == "phr"
    assert_rejected(
        result, op, client, sso_log, code="sso.policy.adapter_refused", status=403, after="/userinfo"
    )
    assert not get_user_model().objects.exists()


# ---- IDT-13: header and container attacks ----------------------------------------------------------
def _attacker_key() -> SigningKey:
    return SigningKey("attacker-kid", pooled_rsa_key(3))


def _self_signed_cert(key: SigningKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "op.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key.private, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _by_attacker(header: dict[str, Any]) -> Any:
    key = _attacker_key()
    return lambda op, claims: op.mint(claims, header={**header}, key=key)


@pytest.mark.case("IDT-13")
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(lambda o, c: o.mint(c, {"crit": ["cnf"], "cnf": {"jkt": "x"}}), id="crit"),
        pytest.param(lambda o, c: o.mint(c, {"crit": ["exp"]}), id="crit-registered-name"),
        pytest.param(lambda o, c: _by_attacker({"jwk": _attacker_key().public_jwk()})(o, c), id="jwk"),
        pytest.param(_by_attacker({"jku": "https://collector.example/jwks.json"}), id="jku"),
        pytest.param(_by_attacker({"x5u": "https://collector.example/cert.pem"}), id="x5u"),
        pytest.param(
            lambda o, c: _by_attacker({"x5c": [_self_signed_cert(_attacker_key())]})(o, c), id="x5c"
        ),
        pytest.param(
            lambda o, c: o.mint(c, {"jku": "https://collector.example/jwks.json", "kid": o.keys[0].kid}),
            id="jku-on-a-good-token",
        ),
        pytest.param(lambda o, c: o.mint(o.mint(c), {"cty": "JWT"}), id="cty-JWT-nested"),
        pytest.param(
            lambda o, c: o.mint(zlib.compress(json.dumps(c).encode()), {"zip": "DEF"}), id="zip-DEF"
        ),
        pytest.param(lambda o, c: o.mint(c, {"b64": False, "crit": ["b64"]}), id="b64-false"),
        pytest.param(lambda o, c: o.mint(c, {"enc": "A256GCM"}), id="enc"),
    ],
)
def test_idt_13_forbidden_headers(source, op, client, sign_in, sso_log, network, raw):
    op.scenario["id_token_raw"] = raw
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.forbidden_header")
    assert network.collector == [], "a key URL in a token header must never be fetched"
    assert "/jwks" not in op_paths(op), "the header is refused before any key is looked up"


def _jwe(op: FakeOP, claims: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": op.keys[0].kid}).encode())
    return ".".join(
        [
            header,
            b64url(b"k" * 256),
            b64url(b"i" * 12),
            b64url(json.dumps(claims).encode()),
            b64url(b"t" * 16),
        ]
    )


def _json_serialization(op: FakeOP, claims: dict[str, Any], flattened: bool) -> str:
    head, body, sig = op.mint(claims).split(".")
    if flattened:
        return json.dumps({"payload": body, "protected": head, "signature": sig})
    return json.dumps({"payload": body, "signatures": [{"protected": head, "signature": sig}]})


@pytest.mark.case("IDT-13")
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_jwe, id="JWE-5-segments"),
        pytest.param(lambda o, c: _json_serialization(o, c, flattened=False), id="JWS-JSON-general"),
        pytest.param(lambda o, c: _json_serialization(o, c, flattened=True), id="JWS-JSON-flattened"),
        pytest.param(lambda o, c: o.mint(c) + ".", id="4-segments"),
        pytest.param(lambda o, c: "!!!." + o.mint(c).split(".", 1)[1], id="header-not-base64"),
        pytest.param(
            lambda o, c: b64url(b"[1,2]") + "." + o.mint(c).split(".", 1)[1], id="header-not-object"
        ),
    ],
)
def test_idt_13_not_a_compact_jws(source, op, client, sign_in, sso_log, raw):
    op.scenario["id_token_raw"] = raw
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.malformed")


@pytest.mark.case("IDT-13")
def test_idt_13_oversized_header(source, op, client, sign_in, sso_log):
    op.scenario["id_token_raw"] = lambda o, c: o.mint(c, {"pad": "x" * 20_000})
    assert_rejected(sign_in(), op, client, sso_log, code="sso.id_token.too_large")


@pytest.mark.case("IDT-13")
def test_idt_13_one_megabyte_header(source, op, client, sign_in, sso_log):
    # A 1 MB header makes the whole token response exceed the 1 MB body cap: refused while reading.
    op.scenario["id_token_raw"] = lambda o, c: o.mint(c, {"pad": "x" * 1024 * 1024})
    assert_rejected(sign_in(), op, client, sso_log, code="sso.http.too_large", status=502)


@pytest.mark.case("IDT-13")
def test_idt_13_size_is_checked_before_any_decoding():
    huge = "!" * (1024 * 1024) + ".e30.sig"  # not even base64: parsing it first would say "malformed"
    with pytest.raises(TokenValidationError) as caught:
        jws.read_header(huge, "sso.id_token")
    assert caught.value.code == "sso.id_token.too_large"


# ---- IDT-14: cross-provider key confusion ------------------------------------------------------------
@pytest.mark.case("IDT-14")
def test_idt_14_other_providers_key_with_the_same_kid(db, op, attacker_op, client, sign_in, sso_log, network):
    honest = make_source(op, "honest")
    make_source(attacker_op, "attacker")
    attacker_op.keys[0].kid = op.keys[0].kid  # B's key set reuses A's kid
    # B is a working provider: a sign-in there puts its keys in the RP's memory.
    assert_signed_in(sign_in("attacker", provider=attacker_op), client)
    client.logout()
    seen_by_attacker = len(attacker_op.requests)
    # In A's flow, B signs a token naming A as issuer and A's client as audience.
    op.scenario["id_token_raw"] = lambda o, claims: attacker_op.mint(claims)
    result = sign_in()
    assert_rejected(result, op, client, sso_log, code="sso.id_token.bad_signature")
    assert attacker_op.requests[seen_by_attacker:] == []
    found = jwks.keys_for(honest, op.keys[0].kid, "RS256")
    assert [k.key.public_numbers() for k in found] == [op.keys[0].private.public_key().public_numbers()]


# ---- IDT-15: other JWTs passed off as ID tokens, and claim-type tricks -------------------------------
LOGOUT_EVENT = {"http://schemas.openid.net/event/backchannel-logout": {}}


@pytest.mark.case("IDT-15")
@pytest.mark.parametrize(
    ("header", "claims", "code"),
    [
        (
            {"typ": "logout+jwt"},
            {"events": LOGOUT_EVENT, "jti": "l1", "nonce": DROP},
            "sso.id_token.wrong_type",
        ),
        ({}, {"events": LOGOUT_EVENT, "jti": "l2", "nonce": DROP}, "sso.id_token.wrong_type"),
        ({"typ": "logout+jwt"}, {"events": LOGOUT_EVENT, "sid": "s1"}, "sso.id_token.wrong_type"),
        (
            {"typ": "at+jwt"},
            {"scope": "openid email", "client_id": "rp-client", "jti": "a1"},
            "sso.id_token.wrong_type",
        ),
        (
            {"typ": "application/at+jwt"},
            {"scope": "openid", "client_id": "rp-client"},
            "sso.id_token.wrong_type",
        ),
        ({"typ": "AT+JWT"}, {"scope": "openid", "client_id": "rp-client"}, "sso.id_token.wrong_type"),
        ({"typ": "secevent+jwt"}, {"events": {"urn:x": {}}}, "sso.id_token.wrong_type"),
        ({}, {"aud": "other-client", "azp": "other-client"}, "sso.id_token.aud_mismatch"),
        ({}, {"aud": {"rp-client": True}}, "sso.id_token.aud_mismatch"),
        ({"typ": 42}, {}, "sso.id_token.bad_typ"),
        ({"typ": ["JWT", "at+jwt"]}, {}, "sso.id_token.bad_typ"),
    ],
    ids=[
        "logout-token",
        "logout-token-without-typ",
        "logout-token-with-nonce",
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "secevent",
        "id-token-for-another-client",
        "aud-object",
        "typ-number",
        "typ-array",
    ],
)
def test_idt_15_other_jwt_as_id_token(source, op, client, sign_in, sso_log, header, claims, code):
    op.scenario["id_token_header"] = header
    op.scenario["id_token"] = claims
    assert_rejected(sign_in(), op, client, sso_log, code=code)


@pytest.mark.case("IDT-15")
@pytest.mark.parametrize("verified", ["true", "True", 1, "1", ["true"]])
def test_idt_15_email_verified_must_be_the_boolean_true(db, op, client, sign_in, sso_log, verified):
    existing = get_user_model().objects.create_user("alice-local", "alice@example.com", "pw")
    make_source(op, "honest", link_existing_by_email=True, email_trusted=True)
    op.users["alice"]["email_verified"] = verified
    result = sign_in()
    assert_rejected(
        result, op, client, sso_log, code="sso.policy.email_in_use", status=403, after="/userinfo"
    )
    assert not Identity.objects.exists()
    existing.refresh_from_db()
    assert existing.has_usable_password()


@pytest.mark.case("IDT-15")
def test_idt_15_email_verified_true_links(db, op, client, sign_in):
    existing = get_user_model().objects.create_user("alice-local", "alice@example.com", "pw")
    make_source(op, "honest", link_existing_by_email=True, email_trusted=True)
    assert_signed_in(sign_in(), client)
    assert Identity.objects.get().user == existing


# ---- validate() directly -------------------------------------------------------------------------------
@pytest.mark.case("IDT-11")
def test_idt_11_validate_needs_the_flows_nonce(source, op):
    token = op.mint(op.id_claims(nonce="n-1"))
    assert id_token.validate(source, token, issuer=op.issuer, nonce="n-1")["sub"] == "alice-sub"
    with pytest.raises(TokenValidationError) as caught:
        id_token.validate(source, token, issuer=op.issuer, nonce="n-2")
    assert caught.value.code == "sso.id_token.nonce_mismatch"


@pytest.mark.case("IDT-05")
def test_idt_05_validate_uses_the_flows_issuer_only(source, op):
    token = op.mint(op.id_claims(nonce="n"))
    with pytest.raises(TokenValidationError) as caught:
        id_token.validate(source, token, issuer="https://op.example/other", nonce="n")
    assert caught.value.code == "sso.id_token.iss_mismatch"


@pytest.mark.case("IDT-09")
def test_idt_09_validate_with_an_explicit_now(source, op):
    issued = int(time.time()) - 30
    token = op.mint(op.id_claims(nonce="n", iat=issued))
    claims = id_token.validate(source, token, issuer=op.issuer, nonce="n", now=issued + LEEWAY + MAX_AGE)
    assert claims["iat"] == issued
    with pytest.raises(TokenValidationError) as caught:
        id_token.validate(source, token, issuer=op.issuer, nonce="n", now=issued + LEEWAY + MAX_AGE + 1)
    assert caught.value.code == "sso.id_token.too_old"
