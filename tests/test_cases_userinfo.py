"""RP-CASES G (UI-01..04): the UserInfo answer, plain or signed, and what it may add to the ID token."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_sso.models import Identity
from tests.conftest import make_source
from tests.fakeop import DROP, FakeOP, SigningKey, pooled_rsa_key, sign_compact
from tests.rejections import calls
from tests.test_cases_id_token import STRONG_SECRET, assert_rejected, assert_signed_in, hs256, op_paths


def _nobody_signed_up() -> None:
    assert not get_user_model().objects.exists()
    assert not Identity.objects.exists()


def _signed(claims: dict[str, Any]) -> Any:
    """Return a ``userinfo_jwt`` knob: the provider's key signs ``claims`` merged over the answer."""

    def knob(op: FakeOP, answer: dict[str, Any]) -> str:
        merged = {**answer, "iss": op.issuer, "aud": op.client_id, **claims}
        return op.mint({k: v for k, v in merged.items() if v is not DROP})

    return knob


def _body(content_type: str, body: bytes, status: int = 200) -> Any:
    return lambda request: (status, {"Content-Type": content_type}, body)


# ---- UI-01: sub of the UserInfo answer, broken answers -------------------------------------------
@pytest.mark.case("UI-01")
@pytest.mark.parametrize(
    "sub",
    ["mallory-sub", DROP, "ALICE-SUB", "alice-sub ", "", None, 42, ["alice-sub"]],
    ids=["other", "missing", "case", "trailing-space", "empty", "null", "number", "array"],
)
def test_ui_01_userinfo_subject_mismatch(source, op, client, sign_in, sso_log, sub):
    op.scenario["userinfo"] = {"sub": sub}
    assert_rejected(sign_in(), op, client, sso_log, code="sso.userinfo.sub_mismatch", after="/userinfo")
    _nobody_signed_up()


@pytest.mark.case("UI-01")
@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (_body("text/plain", b"internal error", 500), "sso.userinfo.status"),
        (_body("application/json", b'{"error": "invalid_token"}', 401), "sso.userinfo.status"),
        (_body("text/html", b"<html>sign in</html>"), "sso.userinfo.not_json"),
        (_body("application/json", b"<html>sign in</html>"), "sso.userinfo.not_json"),
        (_body("application/json", b'["alice-sub"]'), "sso.userinfo.not_json"),
        (_body("application/json", b""), "sso.userinfo.not_json"),
    ],
    ids=["500", "401", "html", "html-labelled-json", "json-array", "empty"],
)
def test_ui_01_broken_userinfo_answer(source, op, client, sign_in, sso_log, answer, code):
    op.scenario["respond"] = {"/userinfo": answer}
    assert_rejected(sign_in(), op, client, sso_log, code=code, status=502, after="/userinfo")
    _nobody_signed_up()


@pytest.mark.case("UI-01")
def test_ui_01_rejected_userinfo_updates_nothing(source, op, client, sign_in, sso_log):
    assert_signed_in(sign_in(), client)
    client.logout()
    user = get_user_model().objects.get()
    stored = Identity.objects.get().claims
    op.users["alice"].update(given_name="Mallory", email="mallory@example.com")
    op.scenario["userinfo"] = {"sub": "mallory-sub"}
    assert_rejected(sign_in(), op, client, sso_log, code="sso.userinfo.sub_mismatch", after="/userinfo")
    user.refresh_from_db()
    assert (user.first_name, user.email) == ("Alice", "alice@example.com")
    assert Identity.objects.get().claims == stored


# ---- UI-02: where the access token goes --------------------------------------------------------------
@pytest.mark.case("UI-02")
def test_ui_02_access_token_only_in_the_authorization_header(source, op, client, sign_in):
    assert_signed_in(sign_in(), client)
    [userinfo] = calls(op, "/userinfo")
    access_token = list(op.access_tokens)[-1]
    assert userinfo.method == "GET"
    assert userinfo.headers["Authorization"] == f"Bearer {access_token}"
    assert userinfo.query == {}
    assert not userinfo.body
    for request in op.requests:
        if request is not userinfo:
            assert access_token not in f"{request.url} {request.body} {request.headers}"


# ---- UI-03: signed UserInfo and content-type confusion -----------------------------------------------
@pytest.mark.case("UI-03")
def test_ui_03_signed_userinfo_accepted(source, op, client, sign_in):
    op.scenario["userinfo"] = {"nickname": "ally"}
    op.scenario["userinfo_jwt"] = _signed({})
    assert_signed_in(sign_in(), client)
    assert Identity.objects.get().claims["nickname"] == "ally"


def _by_other_key(op: FakeOP, answer: dict[str, Any]) -> str:
    claims = {**answer, "iss": op.issuer, "aud": op.client_id}
    return op.mint(claims, key=SigningKey(op.keys[0].kid, pooled_rsa_key(2)))


@pytest.mark.case("UI-03")
@pytest.mark.parametrize(
    ("knob", "code"),
    [
        (_by_other_key, "sso.userinfo.bad_signature"),
        (
            lambda op, answer: sign_compact(
                {"alg": "none"}, {**answer, "iss": op.issuer, "aud": op.client_id}, lambda d: b""
            ),
            "sso.userinfo.alg_not_allowed",
        ),
        (
            lambda op, answer: hs256(STRONG_SECRET)(op, {**answer, "iss": op.issuer, "aud": op.client_id}),
            "sso.userinfo.alg_not_allowed",
        ),
        (_signed({"iss": DROP}), "sso.userinfo.missing_claim"),
        (_signed({"aud": DROP}), "sso.userinfo.missing_claim"),
        (_signed({"aud": "other-client"}), "sso.userinfo.aud_mismatch"),
        (_signed({"iss": "https://op.example/attacker"}), "sso.userinfo.iss_mismatch"),
        (_signed({"sub": "mallory-sub"}), "sso.userinfo.sub_mismatch"),
        (_signed({"exp": 1_000_000_000}), "sso.userinfo.expired"),
        (_signed({"exp": "9999999999"}), "sso.userinfo.invalid"),
        (
            lambda op, answer: op.mint(
                {**answer, "iss": op.issuer, "aud": op.client_id}, {"jku": "https://collector.example/k"}
            ),
            "sso.userinfo.forbidden_header",
        ),
    ],
    ids=[
        "wrong-key",
        "alg-none",
        "hs256-with-client-secret",
        "missing-iss",
        "missing-aud",
        "other-aud",
        "other-iss",
        "other-sub",
        "expired",
        "exp-string",
        "jku",
    ],
)
def test_ui_03_bad_signed_userinfo(source, op, client, sign_in, sso_log, network, knob, code):
    op.scenario["userinfo_jwt"] = knob
    assert_rejected(sign_in(), op, client, sso_log, code=code, after="/userinfo")
    assert network.collector == []
    _nobody_signed_up()


@pytest.mark.case("UI-03")
@pytest.mark.parametrize(
    ("served", "code", "status"),
    [
        ("json-as-jwt", "sso.userinfo.malformed", 400),
        ("jwt-as-json", "sso.userinfo.not_json", 502),
        ("jwt-as-text", "sso.userinfo.not_json", 502),
    ],
)
def test_ui_03_content_type_confusion(source, op, client, sign_in, sso_log, served, code, status):
    def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
        claims = {**op.users["alice"], "iss": op.issuer, "aud": op.client_id}
        if served == "json-as-jwt":
            return 200, {"Content-Type": "application/jwt"}, json.dumps(claims).encode()
        content_type = "application/json" if served == "jwt-as-json" else "text/plain"
        return 200, {"Content-Type": content_type}, op.mint(claims).encode()

    op.scenario["respond"] = {"/userinfo": answer}
    assert_rejected(sign_in(), op, client, sso_log, code=code, status=status, after="/userinfo")
    _nobody_signed_up()


# ---- UI-04: aggregated/distributed claims, and what UserInfo may not override --------------------------
@pytest.mark.case("UI-04")
def test_ui_04_aggregated_and_distributed_claims_are_ignored(
    source, op, attacker_op, network, client, sign_in
):
    aggregated = attacker_op.mint(
        {"iss": attacker_op.issuer, "sub": "alice-sub", "email": "ceo@example.com", "email_verified": True}
    )
    op.scenario["id_token"] = {"email": DROP, "email_verified": DROP}
    op.scenario["userinfo"] = {
        "email": DROP,
        "email_verified": DROP,
        "_claim_names": {"email": "src1", "email_verified": "src1", "groups": "src2", "roles": "src3"},
        "_claim_sources": {
            "src1": {"JWT": aggregated},
            "src2": {"endpoint": "https://collector.example/claims", "access_token": "distributed-at-1"},
            "src3": {"endpoint": op.url("/claims")},
        },
    }
    assert_signed_in(sign_in(), client)
    assert network.collector == []
    assert "/claims" not in op_paths(op)
    assert attacker_op.requests == []
    assert get_user_model().objects.get().email == ""
    stored = Identity.objects.get().claims
    assert (
        not {"_claim_names", "_claim_sources", "email", "email_verified", "groups", "roles"} & stored.keys()
    )


@pytest.mark.case("UI-04")
def test_ui_04_id_token_wins_over_userinfo(source, op, client, sign_in):
    op.scenario["id_token"] = {"email_verified": False}
    op.scenario["userinfo"] = {
        "iss": "https://op.example/attacker",
        "email_verified": True,
        "email": "mallory@example.com",
        "aud": "other-client",
    }
    assert_signed_in(sign_in(), client)
    stored = Identity.objects.get().claims
    assert stored["iss"] == op.issuer
    assert stored["sub"] == "alice-sub"
    assert stored["email_verified"] is False
    assert get_user_model().objects.get().email == "alice@example.com"


@pytest.mark.case("UI-04")
def test_ui_04_userinfo_cannot_make_an_email_verified_for_linking(db, op, client, sign_in, sso_log):
    existing = get_user_model().objects.create_user("alice-local", "alice@example.com", "pw")
    make_source(op, "honest", link_existing_by_email=True, email_trusted=True)
    op.scenario["id_token"] = {"email_verified": False}
    op.scenario["userinfo"] = {"email_verified": True}
    assert_rejected(
        sign_in(), op, client, sso_log, code="sso.policy.email_in_use", status=403, after="/userinfo"
    )
    assert not Identity.objects.exists()
    existing.refresh_from_db()
    assert existing.has_usable_password()


@pytest.mark.case("UI-04")
def test_ui_04_userinfo_fills_standard_claims_the_id_token_lacks(source, op, client, sign_in):
    op.scenario["id_token"] = {
        name: DROP
        for name in ("email", "email_verified", "name", "given_name", "family_name", "preferred_username")
    }
    assert_signed_in(sign_in(), client)
    user = get_user_model().objects.get()
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "alice",
        "alice@example.com",
        "Alice",
        "Example",
    )
