"""RP-CASES M (RS-01..14): bearer tokens presented to the example site's API.

Tokens are signed by the in-process provider (``tests/fakeop.py``) and sent to ``/api/whoami/``
(any valid token) and ``/api/orders/`` (needs ``shop.manage_orders``, i.e. the scope
``app:manage_orders`` through the source's prefix ``app:``). A refusal is an RFC 6750 answer:
status, ``WWW-Authenticate: Bearer`` with the error, no token echoed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import time_machine
from django.core.checks import run_checks

from tests.bearer_support import (
    API,
    _fresh_bearer_memory,  # noqa: F401  (autouse)
    access_claims,
    assert_refused,
    bearer,
    grant,
    link_user,
    make_api_source,
    mint_at,
    service_claims,
)
from tests.fakeop import DROP, FakeOP, SigningKey, b64url, ec_key, hmac_signer, pooled_rsa_key, sign_compact
from tests.test_cases_id_token import _public_encodings

WHOAMI = "/api/whoami/"
ORDERS = "/api/orders/"


def jwks_fetches(op: FakeOP) -> int:
    return sum(1 for r in op.requests if r.path.endswith("/jwks"))


@pytest.fixture
def api(db: Any, op: FakeOP) -> Any:
    return make_api_source(op)


@pytest.fixture
def alice(api: Any) -> Any:
    return link_user(api)


def assert_ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return response.json()


def codes(caplog: Any) -> list[str]:
    return [
        r.getMessage().split("code=")[1].split()[0]
        for r in caplog.records
        if "sso.bearer.refused" in r.getMessage()
    ]


# ---- RS-01 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-01")
def test_rs_01_rfc9068_mode_takes_at_jwt_only(db, op, client, caplog):
    source = make_api_source(op, bearer_require_at_jwt=True)
    link_user(source)
    for typ in ("JWT", DROP, "jwt", "at+jwt+x", "id_token"):
        token = mint_at(op, header={"typ": typ})
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"):
        assert_ok(client.get(WHOAMI, **bearer(mint_at(op, header={"typ": typ}))))
    assert set(codes(caplog)) == {"sso.bearer.wrong_type"}


@pytest.mark.case("RS-01")
def test_rs_01_legacy_mode_takes_jwt_typ_with_an_access_token_claim(db, op, client):
    source = make_api_source(op)  # bearer_require_at_jwt off: Entra, Keycloak, Okta defaults
    link_user(source)
    for typ in ("JWT", DROP):
        assert_ok(client.get(WHOAMI, **bearer(mint_at(op, header={"typ": typ}))))
    other = mint_at(op, header={"typ": "logout+jwt"})
    assert_refused(client.get(WHOAMI, **bearer(other)), 401, "invalid_token", other)


# ---- RS-02 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-02")
def test_rs_02_id_token_presented_as_bearer_token(db, op, client, caplog):
    # Worst case: the API audience is the RP's client ID (one app registration for both).
    source = make_api_source(op, bearer_audiences=f"{API} {op.client_id}")
    link_user(source)
    id_token = op.mint(op.id_claims(nonce="n-1", at_hash="abc"))
    assert_refused(client.get(WHOAMI, **bearer(id_token)), 401, "invalid_token", id_token)
    # Without nonce/at_hash, and typ JWT: no access-token claim (scope, scp, roles ...) either.
    bare = op.mint(op.id_claims())
    assert_refused(client.get(WHOAMI, **bearer(bare)), 401, "invalid_token", bare)
    for marker in ("nonce", "at_hash", "c_hash"):
        token = mint_at(op, access_claims(op, **{marker: "x"}))
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert set(codes(caplog)) == {"sso.bearer.wrong_type"}
    # With the API's own audience configured, an ID token's aud does not even match.
    source.bearer_audiences = API
    source.save()
    assert_refused(client.get(WHOAMI, **bearer(bare)), 401, "invalid_token")


@pytest.mark.case("RS-02")
def test_rs_02_check_warns_when_an_api_audience_is_a_client_id(db, op, attacker_op):
    make_api_source(op, bearer_audiences=f"{API} {attacker_op.client_id}-x")
    make_api_source(attacker_op, "attacker", client_id="other-app", bearer_audiences="other-app")
    warnings = [m for m in run_checks(databases=["default"]) if m.id == "django_sso.W006"]
    assert [w.obj for w in warnings] == ["attacker"]
    assert "'other-app' (the client ID of 'attacker')" in warnings[0].msg


# ---- RS-03 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-03")
def test_rs_03_issuer_selects_exactly_one_source(db, op, attacker_op, client, caplog):
    honest = make_api_source(op)
    make_api_source(attacker_op, "attacker")
    link_user(honest)
    cases = {
        "unknown": access_claims(op, iss="https://unknown.example"),
        "tenant-suffix": access_claims(op, iss=op.issuer + "/tenant"),
        "parent": access_claims(op, iss=op.issuer.rsplit("/", 1)[0]),
        "trailing-slash": access_claims(op, iss=op.issuer + "/"),
        "array": access_claims(op, iss=[op.issuer]),
        "missing": access_claims(op, iss=DROP),
    }
    for name, claims in cases.items():
        token = mint_at(op, claims)
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token), name
    # The honest issuer, signed with the attacker provider's key under the honest kid.
    forged = mint_at(op, key=SigningKey(op.keys[0].kid, attacker_op.keys[0].private))
    assert_refused(client.get(WHOAMI, **bearer(forged)), 401, "invalid_token", forged)
    assert jwks_fetches(attacker_op) == 0, "only the selected source's JWKS is used"
    assert codes(caplog) == ["sso.bearer.unknown_issuer"] * 6 + ["sso.bearer.bad_signature"]
    assert_ok(client.get(WHOAMI, **bearer(mint_at(op))))


# ---- RS-04 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-04")
def test_rs_04_audience_must_name_this_api(db, op, api, alice, client, caplog):
    for aud in (
        DROP,
        "https://other-api.example",
        ["https://other-api.example", "userinfo"],
        "",
        [],
        {"a": API},
    ):
        token = mint_at(op, access_claims(op, aud=aud))
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert set(codes(caplog)) <= {"sso.bearer.aud_mismatch", "sso.bearer.missing_claim"}
    assert_ok(
        client.get(WHOAMI, **bearer(mint_at(op, access_claims(op, aud=[API, "https://other.example"]))))
    )


@pytest.mark.case("RS-04")
def test_rs_04_client_allowlist(db, op, client, caplog):
    source = make_api_source(op, bearer_allowed_clients="mobile-app web-app")
    link_user(source)
    for claims in (
        access_claims(op, client_id="other-app"),
        access_claims(op, client_id=DROP, azp="other-app"),
        access_claims(op, client_id=DROP),
    ):
        token = mint_at(op, claims)
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert set(codes(caplog)) == {"sso.bearer.client_not_allowed"}
    for claims in (
        access_claims(op, client_id="web-app"),
        access_claims(op, client_id=DROP, azp="mobile-app"),
        access_claims(op, client_id=DROP, cid="web-app"),
    ):
        assert_ok(client.get(WHOAMI, **bearer(mint_at(op, claims))))


# ---- RS-05 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-05")
def test_rs_05_alg_none_and_outside_the_allow_list(db, op, api, alice, client, caplog):
    claims = access_claims(op)
    header = {"alg": "none", "typ": "at+jwt", "kid": op.keys[0].kid}
    tokens = [
        sign_compact(header, claims, lambda data: b""),
        sign_compact({**header, "alg": "None"}, claims, lambda data: b""),
        mint_at(
            op, claims, key=SigningKey(op.keys[0].kid, pooled_rsa_key(0), "PS256"), header={"alg": "PS256"}
        ),
    ]
    op.keys.append(ec_key("honest-ec"))
    tokens.append(mint_at(op, claims, key=op.keys[-1]))
    for token in tokens:
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert set(codes(caplog)) == {"sso.bearer.alg_not_allowed"}


@pytest.mark.case("RS-05")
@pytest.mark.parametrize("algorithms", ["RS256", "RS256 HS256"])
def test_rs_05_hs256_keyed_with_the_public_key(db, op, client, caplog, algorithms):
    # HMAC never verifies a bearer token, even where the source allows HS256 for ID tokens.
    source = make_api_source(op, signing_algorithms=algorithms, client_secret="s" * 40)
    link_user(source)
    key = op.keys[0]
    for name, material in _public_encodings(key).items():
        token = sign_compact(
            {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}, access_claims(op), hmac_signer(material)
        )
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token), name
    secret = sign_compact({"alg": "HS256", "typ": "at+jwt"}, access_claims(op), hmac_signer(b"s" * 40))
    assert_refused(client.get(WHOAMI, **bearer(secret)), 401, "invalid_token", secret)
    assert set(codes(caplog)) == {"sso.bearer.alg_not_allowed"}


# ---- RS-06 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-06")
def test_rs_06_times_with_the_leeway(db, op, api, alice, client, caplog):
    now = int(time.time())
    bad = {
        "expired": access_claims(op, iat=now - 600, exp=now - 61),
        "exp-missing": access_claims(op, exp=DROP),
        "exp-string": access_claims(op, exp=str(now + 300)),
        "exp-bool": access_claims(op, exp=True),
        "nbf-future": access_claims(op, nbf=now + 120),
        "iat-future": access_claims(op, iat=now + 120),
        "iat-missing": access_claims(op, iat=DROP),
    }
    for name, claims in bad.items():
        token = mint_at(op, claims)
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token), name
    assert set(codes(caplog)) == {
        "sso.bearer.expired",
        "sso.bearer.missing_claim",
        "sso.bearer.invalid",
        "sso.bearer.not_yet_valid",
    }
    # Inside the leeway (60 s): accepted.
    assert_ok(client.get(WHOAMI, **bearer(mint_at(op, access_claims(op, exp=now - 50, iat=now - 600)))))
    assert_ok(client.get(WHOAMI, **bearer(mint_at(op, access_claims(op, nbf=now + 50, iat=now + 50)))))


@pytest.mark.case("RS-06")
def test_rs_06_leeway_boundary_and_the_cache_honours_exp(db, op, api, alice, client, settings):
    settings.DJANGO_SSO_LEEWAY = 30
    start = time.time()
    token = mint_at(op, access_claims(op, iat=int(start), exp=int(start) + 100))
    with time_machine.travel(start, tick=False) as traveller:
        assert_ok(client.get(WHOAMI, **bearer(token)))
        traveller.move_to(start + 100 + 29)  # remembered, but past exp: checked again, in leeway
        assert_ok(client.get(WHOAMI, **bearer(token)))
        traveller.move_to(start + 100 + 31)
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    settings.DJANGO_SSO_LEEWAY = 3600  # capped at 300
    late = mint_at(op, access_claims(op, iat=int(start) - 1000, exp=int(start) - 301))
    assert_refused(client.get(WHOAMI, **bearer(late)), 401, "invalid_token", late)


# ---- RS-07 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-07")
@pytest.mark.parametrize(
    ("scope_claims", "claims", "granted"),
    [
        ("scope", {"scope": "app:manage_orders app:read"}, True),
        ("scp[]", {"scope": DROP, "scp": ["app:manage_orders"]}, True),
        ("scp roles[]", {"scope": DROP, "scp": "app.read app.write", "roles": ["app:manage_orders"]}, True),
        ("permissions[]", {"scope": DROP, "permissions": ["app:manage_orders"]}, True),
        ("realm_access.roles[]", {"scope": DROP, "realm_access": {"roles": ["app:manage_orders"]}}, True),
        ("scope", {"scope": ["app:manage_orders"]}, False),
        ("scp[]", {"scope": DROP, "scp": ["app:manage_orders", 7]}, False),
        ("scp[]", {"scope": DROP, "scp": ["app:manage_orders", None]}, False),
        ("scp[]", {"scope": DROP, "scp": "app:manage_orders"}, False),
        ("scope", {"scope": {"app:manage_orders": True}}, False),
        ("scope", {"scope": 1}, False),
        ("permissions[]", {"scope": "app:manage_orders", "permissions": []}, False),
    ],
    ids=[
        "rfc9068-scope-string",
        "okta-scp-array",
        "entra-scp-string-and-roles",
        "auth0-permissions",
        "keycloak-realm-roles",
        "scope-as-array",
        "scp-array-with-a-number",
        "scp-array-with-null",
        "scp-string-where-array-expected",
        "scope-object",
        "scope-number",
        "claim-not-configured",
    ],
)
def test_rs_07_scope_formats_per_source(db, op, client, scope_claims, claims, granted):
    source = make_api_source(op, bearer_scope_claims=scope_claims)
    link_user(source)
    token = mint_at(op, access_claims(op, **claims))
    assert_ok(client.get(WHOAMI, **bearer(token)))
    response = client.get(ORDERS, **bearer(token))
    if granted:
        assert_ok(response)
    else:
        params = assert_refused(response, 403, "insufficient_scope", token)
        assert params["scope"] == "app:manage_orders"


# ---- RS-08 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-08")
def test_rs_08_scopes_match_exactly(db, op, api, alice, client):
    for scope in (
        "app:manage_orders_readonly",
        "APP:MANAGE_ORDERS",
        "app:manage_orders,app:admin",
        "app:manage_orders\tapp:admin",
        "app:*",
        "app:manage_orders\u00a0app:read",
        "app:",
        "app:MANAGE_ORDERS",
        "app:shop.*",
    ):
        token = mint_at(op, access_claims(op, scope=scope))
        params = assert_refused(client.get(ORDERS, **bearer(token)), 403, "insufficient_scope", token)
        assert params["scope"] == "app:manage_orders", scope
    assert_ok(client.get(ORDERS, **bearer(mint_at(op, access_claims(op, scope="x app:manage_orders")))))
    assert_ok(client.get(ORDERS, **bearer(mint_at(op, access_claims(op, scope="app:shop.manage_orders")))))


# ---- RS-09 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-09")
def test_rs_09_scope_map_is_per_source(db, op, attacker_op, client):
    make_api_source(op)
    other = make_api_source(attacker_op, "attacker", permission_prefix="")
    link_user(other, username="alice-b")
    token = mint_at(attacker_op, access_claims(attacker_op))
    assert assert_ok(client.get(WHOAMI, **bearer(token)))["permissions"] == []
    assert_refused(client.get(ORDERS, **bearer(token)), 403, "insufficient_scope", token)
    # Another prefix at B: B's "app:" scope still means nothing there.
    other.permission_prefix = "b-app:"
    other.save()
    assert_refused(client.get(ORDERS, **bearer(token)), 403, "insufficient_scope", token)
    assert_ok(
        client.get(
            ORDERS, **bearer(mint_at(attacker_op, access_claims(attacker_op, scope="b-app:manage_orders")))
        )
    )


@pytest.mark.case("RS-09")
def test_rs_09_delegation_is_the_intersection(db, op, client):
    source = make_api_source(op, bearer_delegation=True)
    user = link_user(source)
    with_scope = mint_at(op, access_claims(op, scope="app:manage_orders"))
    without_scope = mint_at(op, access_claims(op, scope="openid"))
    # Token has the scope, the user lacks the permission.
    assert_refused(client.get(ORDERS, **bearer(with_scope)), 403, "insufficient_scope", with_scope)
    grant(user, "shop.manage_orders")
    assert_ok(client.get(ORDERS, **bearer(with_scope)))
    # The user has the permission, the token lacks the scope.
    assert_refused(client.get(ORDERS, **bearer(without_scope)), 403, "insufficient_scope", without_scope)
    # A superuser's blanket pass does not replace the scope either.
    user.is_superuser = True
    user.save()
    assert_refused(client.get(ORDERS, **bearer(without_scope)), 403, "insufficient_scope")


@pytest.mark.case("RS-09")
def test_rs_09_default_the_provider_is_the_authority(db, op, api, client):
    user = link_user(api)
    assert_ok(client.get(ORDERS, **bearer(mint_at(op))))  # the scope alone grants it
    grant(user, "shop.manage_orders")
    no_scope = mint_at(op, access_claims(op, scope="openid"))
    assert_refused(client.get(ORDERS, **bearer(no_scope)), 403, "insufficient_scope", no_scope)


# ---- RS-10 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-10")
@pytest.mark.parametrize("client_id", ["alice-sub", "alice"], ids=["sub-of-a-user", "username-of-a-user"])
def test_rs_10_client_credentials_token_is_a_service_principal(db, op, api, alice, client, client_id):
    token = mint_at(op, service_claims(op, client=client_id, scope="app:manage_orders"))
    body = assert_ok(client.get(WHOAMI, **bearer(token)))
    assert body["principal"] == "service"
    assert body["username"] == f"service:honest:{client_id}"
    assert body["email"] is None
    assert_ok(client.get(ORDERS, **bearer(token)))


@pytest.mark.case("RS-10")
def test_rs_10_detection_rules_are_explicit_per_source(db, op, client):
    source = make_api_source(op, bearer_service_rule="idtyp")
    link_user(source)
    app = mint_at(op, access_claims(op, sub="alice-sub", client_id="alice-sub", idtyp="app"))
    assert assert_ok(client.get(WHOAMI, **bearer(app)))["principal"] == "service"
    # Under the Entra rule, sub == client_id alone does not make a service token.
    person = mint_at(op, access_claims(op, sub="alice-sub", client_id="alice-sub"))
    assert assert_ok(client.get(WHOAMI, **bearer(person)))["principal"] == "user"
    source.bearer_service_rule = "none"
    source.save()
    assert assert_ok(client.get(WHOAMI, **bearer(app)))["principal"] == "user"
    source.bearer_service_rule = "gty"
    source.save()
    auth0 = mint_at(
        op, access_claims(op, sub="m2m@clients", azp="m2m", client_id=DROP, gty="client-credentials")
    )
    assert assert_ok(client.get(WHOAMI, **bearer(auth0)))["username"] == "service:honest:m2m"


# ---- RS-11 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-11")
def test_rs_11_how_the_token_is_sent(db, op, api, alice, client, caplog):
    token = mint_at(op)
    # No credentials: a challenge without an error code.
    assert_refused(client.get(WHOAMI), 401, None)
    assert_refused(client.get(WHOAMI, HTTP_AUTHORIZATION="Basic YTpi"), 401, None)
    # Lowercase scheme and extra spaces are fine.
    assert_ok(client.get(WHOAMI, HTTP_AUTHORIZATION=f"bearer {token}"))
    assert_ok(client.get(WHOAMI, HTTP_AUTHORIZATION=f"BEARER   {token}  "))
    # The query string and the body are never read for a token...
    assert_refused(client.get(f"{WHOAMI}?access_token={token}"), 401, None, token)
    form = {"data": f"access_token={token}", "content_type": "application/x-www-form-urlencoded"}
    assert_refused(client.post(WHOAMI, **form), 401, None, token)
    # ...and together with the header they make a malformed request.
    both = client.get(f"{WHOAMI}?access_token={token}", **bearer(token))
    assert_refused(both, 400, "invalid_request", token)
    body = client.post(WHOAMI, **form, **bearer(token))
    assert_refused(body, 400, "invalid_request", token)
    # Malformed headers.
    for header in (
        "Bearer",
        "Bearer ",
        f"Bearer {token} extra",
        'Bearer "quoted"',
        "Bearer t\u00f6ken",
        "Bearer a,b",
    ):
        assert_refused(client.get(WHOAMI, HTTP_AUTHORIZATION=header), 400, "invalid_request", token)
    # A bad token, insufficient scope.
    assert_refused(client.get(WHOAMI, **bearer("not-a-token")), 401, "invalid_token")
    params = assert_refused(
        client.get(ORDERS, **bearer(mint_at(op, access_claims(op, scope="openid")))),
        403,
        "insufficient_scope",
    )
    assert params["scope"] == "app:manage_orders"
    for record in caplog.records:
        assert token not in record.getMessage()


@pytest.mark.case("RS-11")
def test_rs_11_the_middleware_refuses_a_bad_token_on_any_page(db, op, api, client):
    # No bearer token: the site works as before (anonymous); a bad one is refused outright.
    assert client.get("/whoami/").json()["authenticated"] is False
    assert_refused(client.get("/whoami/", **bearer("bad.token.here")), 401, "invalid_token")
    link_user(api)
    assert client.get("/whoami/", **bearer(mint_at(op))).json()["username"] == "alice"


# ---- RS-12 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-12")
def test_rs_12_sender_constrained_tokens_are_refused(db, op, api, alice, client, caplog):
    for cnf in (
        {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
        {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
    ):
        token = mint_at(op, access_claims(op, cnf=cnf))
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
        # The DPoP scheme is refused too, never downgraded to a plain bearer token.
        assert_refused(
            client.get(WHOAMI, HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP="proof"),
            401,
            "invalid_token",
            token,
        )
    plain = mint_at(op)
    assert_refused(client.get(WHOAMI, HTTP_AUTHORIZATION=f"DPoP {plain}"), 401, "invalid_token", plain)
    assert set(codes(caplog)) == {"sso.bearer.sender_constrained", "sso.bearer.dpop"}


# ---- RS-13 -------------------------------------------------------------------------------------
@pytest.mark.case("RS-13")
def test_rs_13_hostile_headers_and_shapes(db, op, api, alice, client, network, settings):
    claims = access_claims(op)
    hostile_headers = [
        {"kid": "../../../../dev/null"},
        {"kid": "' OR 1=1--"},
        {"kid": "k" * 10_000},
        {"kid": "ключ-\u2603"},
        {"kid": 42},
        {"jku": "https://collector.example/jwks"},
        {"x5u": "https://collector.example/cert"},
        {"jwk": op.keys[0].public_jwk()},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"], "exp": 1},
        {"zip": "DEF"},
        {"cty": "JWT"},
    ]
    tokens = [mint_at(op, claims, header=h) for h in hostile_headers]
    head, body, sig = mint_at(op, claims).split(".")
    tokens += [
        f"{head}.{body}.{sig}.extra",  # 4 segments
        f"{head}.{b64url(b'encrypted-key')}.{b64url(b'iv')}.{body}.{b64url(b'tag')}",  # JWE shape
        f"{b64url(json.dumps({'alg': 'RSA-OAEP', 'enc': 'A256GCM'}).encode())}.a.b.c.d",
        f"{head}.{body}",
        f"{head}..{sig}",
        f"{head}.{b64url(b'not json')}.{sig}",
        f"{b64url(b'[1]')}.{body}.{sig}",
    ]
    big = mint_at(op, access_claims(op, pad="x" * 80_000))
    for token in tokens:
        assert_refused(client.get(WHOAMI, **bearer(token)), 401, "invalid_token", token)
    assert_refused(client.get(WHOAMI, **bearer(big)), 401, "invalid_token")
    assert network.collector == []
    assert jwks_fetches(op) <= 1, "unknown kids refetch at most once per cooldown (KEY-04)"
    assert_ok(client.get(WHOAMI, **bearer(mint_at(op))))


# ---- RS-14 -------------------------------------------------------------------------------------
def _introspection(answer: Any, status: int = 200, content_type: str = "application/json") -> Any:
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    return lambda request: (status, {"Content-Type": content_type}, body)


@pytest.fixture
def opaque_api(db: Any, op: FakeOP) -> Any:
    source = make_api_source(
        op, bearer_opaque_tokens="introspection", introspection_url=op.url("/introspect")
    )
    link_user(source)
    return source


def _active(op: FakeOP, **overrides: Any) -> dict[str, Any]:
    answer = {
        "active": True,
        "iss": op.issuer,
        "aud": API,
        "sub": "alice-sub",
        "client_id": op.client_id,
        "scope": "app:manage_orders",
        "exp": int(time.time()) + 300,
        "token_type": "Bearer",
    }
    answer.update(overrides)
    return {k: v for k, v in answer.items() if v is not DROP}


@pytest.mark.case("RS-14")
@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ({"active": "true", "sub": "alice-sub", "aud": API}, 401),
        ({}, 401),
        ({"active": False, "scope": "app:manage_orders", "aud": API, "sub": "alice-sub"}, 401),
        ({"active": 1, "aud": API, "sub": "alice-sub"}, 401),
        ("foreign-aud", 401),
        ("no-aud", 401),
        ("foreign-iss", 401),
        ("foreign-client", 401),
        ("past-exp", 401),
        ("refresh-token", 401),
        ("bound", 401),
        (b"<html>hello</html>", 503),
        ("server-error", 503),
        ("redirect", 503),
        ("timeout", 503),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_rs_14_introspection_answers(opaque_api, op, client, network, settings, answer, status):
    import requests

    if answer == "foreign-client":
        opaque_api.bearer_allowed_clients = op.client_id
        opaque_api.save()
    respond: Any
    if answer == "server-error":
        respond = _introspection({"error": "boom"}, status=500)
    elif answer == "redirect":
        respond = lambda request: (307, {"Location": "https://collector.example/steal"}, b"")  # noqa: E731
    elif answer == "timeout":
        network.failures[op.url("/introspect")] = requests.Timeout("slow")
        respond = None
    elif isinstance(answer, bytes):
        respond = _introspection(answer, content_type="text/html")
    elif isinstance(answer, str):
        respond = _introspection(
            {
                "foreign-aud": _active(op, aud="https://other-api.example"),
                "no-aud": _active(op, aud=DROP),
                "foreign-iss": _active(op, iss="https://op.example/attacker"),
                "foreign-client": _active(op, client_id="someone-else"),
                "past-exp": _active(op, exp=int(time.time()) - 120),
                "refresh-token": _active(op, token_type="refresh_token"),
                "bound": _active(op, cnf={"jkt": "x"}),
            }[answer]
        )
    else:
        respond = _introspection(answer)
    if respond is not None:
        op.scenario["respond"] = {"/introspect": respond}
    token = "opaque-" + "x" * 30
    response = client.get(WHOAMI, **bearer(token))
    if status == 503:
        assert response.status_code == 503
        assert response["Retry-After"] == "30"
        assert response.json()["error"] == "temporarily_unavailable"
    else:
        assert_refused(response, status, "invalid_token", token)
    assert network.collector == []
    calls = [r for r in op.requests if r.path.endswith("/introspect")]
    assert len(calls) <= 1


@pytest.mark.case("RS-14")
def test_rs_14_answer_without_aud_needs_the_client_allow_list(opaque_api, op, client):
    op.scenario["respond"] = {"/introspect": _introspection(_active(op, aud=DROP))}
    assert_refused(client.get(WHOAMI, **bearer("token-1")), 401, "invalid_token")
    opaque_api.bearer_allowed_clients = op.client_id
    opaque_api.save()
    assert assert_ok(client.get(WHOAMI, **bearer("token-2")))["username"] == "alice"
    op.scenario["respond"] = {"/introspect": _introspection(_active(op, aud=DROP, client_id="other"))}
    assert_refused(client.get(WHOAMI, **bearer("token-3")), 401, "invalid_token")


@pytest.mark.case("RS-14")
def test_rs_14_active_token_authenticated_cached_and_only_its_provider_asked(
    opaque_api, op, attacker_op, client, network
):
    make_api_source(attacker_op, "attacker")  # trusted for JWTs, never asked about opaque tokens
    op.scenario["respond"] = {"/introspect": _introspection(_active(op))}
    token = "opaque-token-0123456789"
    for _ in range(5):
        assert assert_ok(client.get(ORDERS, **bearer(token))) == {"orders": []}
    calls = [r for r in op.requests if r.path.endswith("/introspect")]
    assert len(calls) == 1, "cached by the token's hash"
    call = calls[0]
    assert call.form == {"token": token, "token_type_hint": "access_token"}
    assert call.headers["Authorization"].startswith("Basic "), "the RS authenticates"
    assert not attacker_op.requests


@pytest.mark.case("RS-14")
def test_rs_14_cache_lasts_until_exp_or_the_ceiling(opaque_api, op, client, settings):
    settings.DJANGO_SSO_BEARER_OPAQUE_CACHE_SECONDS = 100
    start = time.time()
    op.scenario["respond"] = {"/introspect": _introspection(_active(op, exp=int(start) + 1000))}
    with time_machine.travel(start, tick=False) as traveller:
        assert_ok(client.get(WHOAMI, **bearer("tok-a")))
        traveller.move_to(start + 99)
        assert_ok(client.get(WHOAMI, **bearer("tok-a")))
        assert sum(r.path.endswith("/introspect") for r in op.requests) == 1
        traveller.move_to(start + 101)  # the ceiling: asked again
        assert_ok(client.get(WHOAMI, **bearer("tok-a")))
        assert sum(r.path.endswith("/introspect") for r in op.requests) == 2
        # A token whose exp comes first is asked about again after it (and then refused).
        op.scenario["respond"] = {"/introspect": _introspection(_active(op, exp=int(start) + 130))}
        assert_ok(client.get(WHOAMI, **bearer("tok-b")))
        traveller.move_to(start + 130 + 61)
        op.scenario["respond"] = {"/introspect": _introspection({"active": False})}
        assert_refused(client.get(WHOAMI, **bearer("tok-b")), 401, "invalid_token")
        assert sum(r.path.endswith("/introspect") for r in op.requests) == 4
