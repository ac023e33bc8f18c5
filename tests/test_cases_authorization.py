"""RP-CASES B and C: the authorization request (AZQ) and the callback (AZR)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets as real_secrets
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode, urlsplit

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

import django_sso
from django_sso.internal import discovery
from django_sso.internal import flow as flow_module
from django_sso.models import Identity, Source
from tests.fakeop import FakeOP, b64url
from tests.rejections import (
    assert_rejected,
    begin,
    calls,
    flow_secrets,
    local,
    pending_flows,
    query_of,
    with_params,
    with_raw_query,
)

CALLBACK = "http://testserver/sso/honest/callback/"
#: RFC 7636 4.1: unreserved characters only.
VERIFIER_CHARS = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def random_bits(value: str) -> int:
    """Return the bits carried by a base64url value from ``secrets.token_urlsafe``."""
    return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) * 8


def finish(client: Client, op: FakeOP, authorize_url: str, user: str = "alice"):
    """Let the provider answer ``authorize_url`` and feed the redirect to the callback."""
    return client.get(local(op.authorize(authorize_url, user=user)))


# ---- AZQ: the authorization request ---------------------------------------------------------


@pytest.mark.case("AZQ-01")
def test_azq_01_response_type_code_and_configured_scopes_only(client, op, source, sso_log):
    discovery.apply_metadata(source, op.discovery())
    source.extra_authorize_params = {
        "response_type": "token",
        "scope": "admin",
        "redirect_uri": "https://evil.example/cb",
        "hd": "example.com",
    }
    source.save()
    assert {"token", "id_token token", "code id_token"} <= set(op.discovery()["response_types_supported"])

    url = client.post(
        "/sso/honest/login/?scope=admin&response_mode=fragment&response_type=token",
        {
            "scope": "openid admin",
            "response_type": "id_token token",
            "redirect_uri": "https://evil.example/cb",
            "client_id": "someone-else",
            "login_hint": "alice@example.com",
            "prompt": "consent",
        },
    )["Location"]
    params = query_of(url)
    assert params["response_type"] == "code"
    assert params["scope"].split() == ["openid", "email", "profile"]
    assert params["redirect_uri"] == CALLBACK
    assert params["client_id"] == op.client_id
    assert "response_mode" not in params
    assert params["login_hint"] == "alice@example.com"
    assert params["prompt"] == "consent"
    assert params["hd"] == "example.com"

    # The per-request values changed nothing shared: a second request sees the configuration.
    stored = Source.objects.get(pk=source.pk)
    assert stored.extra_authorize_params["scope"] == "admin"
    assert stored.scopes == "openid email profile"
    second = query_of(begin(Client()))
    assert second["scope"].split() == ["openid", "email", "profile"]
    assert "login_hint" not in second and "prompt" not in second

    response = finish(client, op, url)
    assert response.status_code == 303
    assert [r.form["grant_type"] for r in calls(op, "/token")] == ["authorization_code"]


@pytest.mark.case("AZQ-01")
def test_azq_01_openid_scope_added_for_oidc_only(client, op, source):
    source.scopes = "email profile"
    source.save()
    assert query_of(begin(client))["scope"].split() == ["openid", "email", "profile"]
    source.protocol = "oauth2"
    source.save()
    assert query_of(begin(client))["scope"].split() == ["email", "profile"]


@pytest.mark.case("AZQ-01")
def test_azq_01_password_grant_never_implemented():
    package = Path(django_sso.__file__).parent
    text = "\n".join(p.read_text() for p in package.rglob("*.py"))
    grants = set(re.findall(r"""["']grant_type["']\s*[:,=]\s*["'](\w+)["']""", text))
    assert "authorization_code" in grants
    assert grants <= {"authorization_code", "refresh_token", "client_credentials"}


@pytest.mark.case("AZQ-02")
def test_azq_02_pkce_s256_verifier_per_transaction(client, op, source, attacker_source, attacker_op):
    browsers = [client, Client()]
    verifiers = []
    for browser in browsers:
        for _ in range(5):
            url = begin(browser)
            params = query_of(url)
            record = pending_flows(browser)[params["state"]]
            verifier = record["code_verifier"]
            assert params["code_challenge_method"] == "S256"
            assert params["code_challenge"] == b64url(hashlib.sha256(verifier.encode()).digest())
            assert VERIFIER_CHARS.match(verifier)
            assert verifier not in url
            assert record["source_id"] == source.pk
            verifiers.append(verifier)
    assert len(set(verifiers)) == len(verifiers)

    url = begin(client)
    verifier = pending_flows(client)[query_of(url)["state"]]["code_verifier"]
    assert finish(client, op, url).status_code == 303
    (token_request,) = calls(op, "/token")
    assert token_request.form["code_verifier"] == verifier
    # Only that provider's token endpoint ever saw it, and the session forgot it.
    assert attacker_op.requests == []
    assert all(verifier not in r.url + r.body for r in op.requests if r.path != token_request.path)
    assert pending_flows(client) == {}


@pytest.mark.case("AZQ-02")
def test_azq_02_verifier_state_nonce_come_from_secrets(client, source, monkeypatch):
    drawn = []

    def token_urlsafe(nbytes=None):
        value = real_secrets.token_urlsafe(nbytes)
        drawn.append((nbytes, value))
        return value

    monkeypatch.setattr(flow_module, "secrets", SimpleNamespace(token_urlsafe=token_urlsafe))
    params = query_of(begin(client))
    record = pending_flows(client)[params["state"]]
    values = {value: nbytes for nbytes, value in drawn}
    for name in ("state", "nonce", "code_verifier"):
        assert values[record[name]] >= 32


@pytest.mark.case("AZQ-03")
def test_azq_03_state_and_nonce_fresh_and_strong(client, op, source):
    seen = []
    for browser in (client, Client()):
        for _ in range(10):
            params = query_of(begin(browser))
            assert random_bits(params["state"]) >= 128
            assert random_bits(params["nonce"]) >= 128
            seen += [params["state"], params["nonce"]]
    assert len(set(seen)) == len(seen)


@pytest.mark.case("AZQ-03")
def test_azq_03_flow_record_and_nonce_in_code_flow(client, op, source):
    url = begin(client, next="/shop/")
    params = query_of(url)
    record = pending_flows(client)[params["state"]]
    assert record["source_id"] == source.pk
    assert record["issuer"] == op.issuer
    assert record["redirect_uri"] == CALLBACK
    assert record["nonce"] == params["nonce"]
    assert record["next_url"] == "/shop/"
    assert record["purpose"] == "login"
    assert VERIFIER_CHARS.match(record["code_verifier"])
    assert finish(client, op, url).status_code == 303
    (token_request,) = calls(op, "/token")
    code = token_request.form["code"]
    assert op.codes[code]["params"]["nonce"] == params["nonce"]


@pytest.mark.case("AZQ-03")
def test_azq_03_state_bound_to_the_session_that_started_it(client, op, source, sso_log):
    url = begin(client)
    stranger = Client()
    begin(stranger)
    response = finish(stranger, op, url)
    assert_rejected(
        response,
        stranger,
        sso_log,
        status=400,
        code="sso.state.unknown",
        ops=[op],
        state=query_of(url)["state"],
    )
    assert query_of(url)["state"] in pending_flows(client)


@pytest.mark.case("AZQ-03")
def test_azq_03_flow_expires_after_ten_minutes(client, op, source, sso_log):
    with time_machine.travel(time.time(), tick=False) as clock:
        url = begin(client)
        secrets = flow_secrets(client)
        clock.shift(9 * 60)
        assert finish(client, op, url).status_code == 303

    other = Client()
    with time_machine.travel(time.time(), tick=False) as clock:
        url = begin(other)
        secrets |= flow_secrets(other)
        clock.shift(10 * 60 + 1)
        response = finish(other, op, url)
    assert_rejected(
        response,
        other,
        sso_log,
        status=400,
        code="sso.state.expired",
        ops=[op],
        state=query_of(url)["state"],
        token_calls=1,
        userinfo_calls=1,
        secrets=secrets,
    )


@pytest.mark.case("AZQ-04")
@pytest.mark.parametrize(
    "headers",
    [{"HTTP_HOST": "evil.example"}, {"HTTP_X_FORWARDED_HOST": "evil.example"}],
    ids=["host", "x-forwarded-host"],
)
def test_azq_04_redirect_uri_from_configuration(client, op, source, settings, headers):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "evil.example"]
    settings.USE_X_FORWARDED_HOST = True
    response = client.post("/sso/honest/login/", **headers)
    assert response.status_code == 302
    url = response["Location"]
    assert query_of(url)["redirect_uri"] == CALLBACK
    assert "evil.example" not in url
    assert finish(client, op, url).status_code == 303
    (token_request,) = calls(op, "/token")
    # Byte-identical in both legs (RFC 6749 4.1.3).
    assert token_request.form["redirect_uri"] == query_of(url)["redirect_uri"]
    assert "redirect_uri=" + quote(CALLBACK, safe="") in token_request.body


@pytest.mark.case("AZQ-04")
def test_azq_04_no_configured_base_no_redirect(client, op, source, settings, sso_log):
    settings.DJANGO_SSO_REDIRECT_URI_BASE = None
    response = client.post("/sso/honest/login/", HTTP_HOST="testserver")
    assert response.status_code == 502
    assert not response.has_header("Location")
    assert pending_flows(client) == {}
    assert op.requests == []


# ---- AZR: the authorization response ---------------------------------------------------------


@pytest.mark.case("AZR-01")
def test_azr_01_missing_state(client, op, source, sso_log):
    url = begin(client)
    secrets = flow_secrets(client)
    response = client.get(local(with_params(op.authorize(url), drop=["state"])))
    assert_rejected(
        response, client, sso_log, status=400, code="sso.state.missing", ops=[op], secrets=secrets
    )


@pytest.mark.case("AZR-01")
def test_azr_01_unknown_state(client, op, source, sso_log):
    url = begin(client)
    secrets = flow_secrets(client)
    forged = real_secrets.token_urlsafe(32)
    response = client.get(local(with_params(op.authorize(url), state=forged)))
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.state.unknown",
        ops=[op],
        state=forged,
        secrets=secrets,
    )


@pytest.mark.case("AZR-01")
def test_azr_01_state_of_another_browser_login_csrf(client, op, source, sso_log):
    attacker = Client()
    attacker_url = begin(attacker)
    callback_url = op.authorize(attacker_url, user="bob")
    begin(client)
    secrets = flow_secrets(client) | flow_secrets(attacker)
    response = client.get(local(callback_url))
    assert_rejected(
        response, client, sso_log, status=400, code="sso.state.unknown", ops=[op], secrets=secrets
    )
    assert get_user_model().objects.count() == 0


@pytest.mark.case("AZR-01")
@pytest.mark.parametrize(
    "alter",
    [str.swapcase, str.upper, lambda s: s + "x", lambda s: s[:-1], lambda s: s + " ", lambda s: s + "\x00"],
    ids=["swapcase", "upper", "trailing-char", "truncated", "trailing-space", "trailing-nul"],
)
def test_azr_01_near_miss_state(client, op, source, sso_log, alter):
    url = begin(client)
    state = query_of(url)["state"]
    secrets = flow_secrets(client)
    genuine = op.authorize(url)
    response = client.get(local(with_params(genuine, state=alter(state))))
    assert_rejected(
        response, client, sso_log, status=400, code="sso.state.unknown", ops=[op], secrets=secrets
    )
    # No "closest match": the real flow is still waiting, and only the exact state finds it.
    assert state in pending_flows(client)
    assert client.get(local(genuine)).status_code == 303


@pytest.mark.case("AZR-01")
def test_azr_01_state_compared_in_constant_time(client, op, source, monkeypatch):
    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return real_secrets.compare_digest(a, b)

    url = begin(client)
    monkeypatch.setattr(flow_module, "hmac", SimpleNamespace(compare_digest=compare_digest))
    assert finish(client, op, url).status_code == 303
    assert (query_of(url)["state"].encode(),) * 2 in compared


@pytest.mark.case("AZR-02")
@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
    ],
)
def test_azr_02_replayed_callback(client, op, source, settings, sso_log, engine):
    settings.SESSION_ENGINE = engine
    url = begin(client)
    callback_url = op.authorize(url)
    assert client.get(local(callback_url)).status_code == 303
    user_id = client.session["_auth_user_id"]

    again = client.get(local(callback_url))
    assert again.status_code == 400
    assert again.context["code"] == "sso.state.unknown"
    assert client.session["_auth_user_id"] == user_id
    assert len(calls(op, "/token")) == 1

    # The URL leaked (Referer, history) and replayed from another browser: nothing there either.
    thief = Client()
    response = thief.get(local(callback_url))
    assert_rejected(
        response,
        thief,
        sso_log,
        status=400,
        code="sso.state.unknown",
        ops=[op],
        token_calls=1,
        userinfo_calls=1,
    )


@pytest.mark.case("AZR-02")
@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
    ],
)
def test_azr_02_state_deleted_on_failed_first_use(client, op, source, settings, sso_log, engine):
    settings.SESSION_ENGINE = engine
    op.scenario["token"] = {"token_type": "mac"}
    url = begin(client)
    secrets = flow_secrets(client)
    callback_url = op.authorize(url)
    first = client.get(local(callback_url))
    assert_rejected(
        first,
        client,
        sso_log,
        status=502,
        code="sso.token.bad_token_type",
        ops=[op],
        state=query_of(url)["state"],
        token_calls=1,
        secrets=secrets,
    )
    second = client.get(local(callback_url))
    assert_rejected(
        second,
        client,
        sso_log,
        status=400,
        code="sso.state.unknown",
        ops=[op],
        token_calls=1,
        secrets=secrets,
    )


@pytest.mark.case("AZR-02")
@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
    ],
)
def test_azr_02_attacker_state_in_shared_store_not_found(client, op, source, settings, sso_log, engine):
    settings.SESSION_ENGINE = engine
    attacker = Client()
    callback_url = op.authorize(begin(attacker), user="bob")
    begin(client)
    response = client.get(local(callback_url))
    assert_rejected(response, client, sso_log, status=400, code="sso.state.unknown", ops=[op])
    assert len(pending_flows(attacker)) == 1


@pytest.mark.case("AZR-03")
@pytest.mark.parametrize(
    "raw_iss",
    [
        quote("https://attacker.example", safe=""),
        quote("https://op.example/attacker", safe=""),
        quote("https://op.example/honest/", safe=""),
        quote("https://op.example/HONEST", safe=""),
        quote("https://op.example:443/honest", safe=""),
        quote("http://op.example/honest", safe=""),
        quote(" https://op.example/honest", safe=""),
        "https%3A%2F%2Fop.example%2Fhonest%252F",
        "https%3A%2F%2Fop.example%2Fhonest%00",
        "https%3A%2F%2Fop.example%2Fhonest%2Fx%2F..",
    ],
    ids=[
        "attacker",
        "other-configured-provider",
        "trailing-slash",
        "case",
        "port-443",
        "http",
        "leading-space",
        "double-encoded-slash",
        "nul",
        "dot-segment",
    ],
)
def test_azr_03_wrong_iss_rejected_before_token_call(client, op, source, attacker_source, sso_log, raw_iss):
    url = begin(client)
    secrets = flow_secrets(client)
    callback_url = with_raw_query(with_params(op.authorize(url), drop=["iss"]), f"iss={raw_iss}")
    response = client.get(local(callback_url))
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.iss_mismatch",
        ops=[op],
        state=query_of(url)["state"],
        secrets=secrets,
    )


@pytest.mark.case("AZR-03")
def test_azr_03_iss_compared_after_form_decoding(client, op, source):
    url = begin(client)
    encoded = "https%3A%2F%2Fop.example%2Fhon%65st"
    callback_url = with_raw_query(with_params(op.authorize(url), drop=["iss"]), f"iss={encoded}")
    assert client.get(local(callback_url)).status_code == 303


@pytest.mark.case("AZR-04")
def test_azr_04_advertised_but_missing_iss(client, op, source, sso_log):
    assert source.iss_parameter_supported
    op.scenario["authorize"] = {"iss": None}
    url = begin(client)
    secrets = flow_secrets(client)
    response = finish(client, op, url)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.iss_missing",
        ops=[op],
        state=query_of(url)["state"],
        secrets=secrets,
    )


@pytest.mark.case("AZR-04")
@pytest.mark.parametrize("iss", [None, "https://op.example/honest"], ids=["absent", "equal"])
def test_azr_04_not_advertised_accepts_absent_or_equal_iss(client, op, source, iss):
    source.iss_parameter_supported = False
    source.save()
    op.scenario["authorize"] = {"iss": iss}
    assert finish(client, op, begin(client)).status_code == 303


@pytest.mark.case("AZR-04")
def test_azr_04_not_advertised_but_wrong_iss_rejected(client, op, source, sso_log):
    source.iss_parameter_supported = False
    source.save()
    op.scenario["authorize"] = {"iss": "https://attacker.example"}
    url = begin(client)
    response = finish(client, op, url)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.iss_mismatch",
        ops=[op],
        state=query_of(url)["state"],
    )


@pytest.mark.case("AZR-04")
def test_azr_04_id_token_iss_still_checked(client, op, source, sso_log):
    source.iss_parameter_supported = False
    source.save()
    op.scenario["authorize"] = {"iss": None}
    op.scenario["id_token"] = {"iss": "https://attacker.example"}
    url = begin(client)
    secrets = flow_secrets(client)
    response = finish(client, op, url)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.iss_mismatch",
        ops=[op],
        state=query_of(url)["state"],
        token_calls=1,
        secrets=secrets,
    )


@pytest.mark.case("AZR-04")
@pytest.mark.parametrize(
    ("advertised", "persisted"), [(True, True), (False, False), ("true", False), (None, False)]
)
def test_azr_04_flag_persisted_from_discovery(db, op, advertised, persisted):
    if advertised is None:
        op.scenario["discovery"] = {}
        metadata = {
            k: v for k, v in op.discovery().items() if k != "authorization_response_iss_parameter_supported"
        }
    else:
        op.scenario["discovery"] = {"authorization_response_iss_parameter_supported": advertised}
        metadata = discovery.fetch_metadata(op.url("/.well-known/openid-configuration"))
    source = Source(
        name="Disc", slug="disc", client_id="c", client_secret="s", iss_parameter_supported=not persisted
    )
    discovery.apply_metadata(source, metadata)
    source.save()
    assert Source.objects.get(slug="disc").iss_parameter_supported is persisted


def _mixup_callback(
    op: FakeOP, attacker_op: FakeOP, attacker_url: str, redirect_uri: str | None = None
) -> str:
    """The attacker's /authorize forwards the browser to the honest provider, keeping the state."""
    honest_url = attacker_url.replace(attacker_op.url("/authorize"), op.url("/authorize"))
    if redirect_uri is not None:
        honest_url = with_params(honest_url, redirect_uri=redirect_uri)
    return op.authorize(honest_url)


@pytest.mark.case("AZR-05")
def test_azr_05_mix_up_rejected_by_iss(client, op, attacker_op, source, attacker_source, sso_log):
    url = begin(client, "attacker")
    secrets = flow_secrets(client)
    callback_url = _mixup_callback(op, attacker_op, url)
    assert urlsplit(callback_url).path == "/sso/attacker/callback/"
    assert query_of(callback_url)["iss"] == op.issuer
    honest_code = query_of(callback_url)["code"]
    response = client.get(local(callback_url))
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.iss_mismatch",
        ops=[op, attacker_op],
        state=query_of(url)["state"],
        secrets=secrets,
    )
    assert all(honest_code not in r.url + r.body for r in attacker_op.requests)


@pytest.mark.case("AZR-05")
def test_azr_05_callback_path_must_match_flow_source(
    client, op, attacker_op, source, attacker_source, sso_log
):
    url = begin(client, "attacker")
    secrets = flow_secrets(client)
    # The honest provider sends the browser to its own registered callback, with the attacker flow's state.
    callback_url = _mixup_callback(op, attacker_op, url, redirect_uri=CALLBACK)
    assert urlsplit(callback_url).path == "/sso/honest/callback/"
    response = client.get(local(callback_url))
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.source_mismatch",
        ops=[op, attacker_op],
        state=query_of(url)["state"],
        secrets=secrets,
    )


@pytest.mark.case("AZR-05")
def test_azr_05_mix_up_without_iss_code_goes_only_to_flow_provider(
    client, op, attacker_op, source, attacker_source, sso_log
):
    attacker_source.iss_parameter_supported = False
    attacker_source.save()
    op.scenario["authorize"] = {"iss": None}
    url = begin(client, "attacker")
    nonce = query_of(url)["nonce"]
    secrets = flow_secrets(client)

    # The attacker's token endpoint answers with an ID token claiming the honest issuer.
    def attacker_token(request):
        claims = op.id_claims("alice", nonce=nonce)
        body = {"access_token": "at-attacker", "token_type": "Bearer", "id_token": attacker_op.mint(claims)}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    attacker_op.scenario["respond"] = {"/token": attacker_token}
    callback_url = _mixup_callback(op, attacker_op, url)
    honest_code = query_of(callback_url)["code"]
    response = client.get(local(callback_url))
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.iss_mismatch",
        ops=[op, attacker_op],
        state=query_of(url)["state"],
        token_calls=1,
        secrets=secrets | {"at-attacker"},
    )
    assert calls(op, "/token") == []
    (sent,) = calls(attacker_op, "/token")
    assert sent.form["code"] == honest_code
    assert op.codes[honest_code]["used"] is False
    assert Identity.objects.count() == 0


@pytest.mark.case("AZR-06")
def test_azr_06_error_response_generic_and_escaped(client, op, source, sso_log):
    description = "<script>alert(1)</script>"
    op.scenario["authorize"] = {"error": "access_denied", "error_description": description}
    url = begin(client)
    response = finish(client, op, url)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.authorize.access_denied",
        ops=[op],
        state=query_of(url)["state"],
    )
    page = response.content.decode()
    assert "alert(1)" not in page and "<script" not in page
    assert source.name not in page and op.issuer not in page
    assert "alert(1)" not in sso_log.text
    # No retry, no loop: one visit to the provider, and the answer is not a redirect.
    assert len(calls(op, "/authorize")) == 1
    assert not response.has_header("Location")


@pytest.mark.case("AZR-06")
def test_azr_06_error_response_with_unknown_state(client, op, source, sso_log):
    op.scenario["authorize"] = {"error": "access_denied", "error_description": "<script>alert(1)</script>"}
    url = begin(client)
    state = query_of(url)["state"]
    callback_url = with_params(op.authorize(url), state=real_secrets.token_urlsafe(32))
    response = client.get(local(callback_url))
    assert_rejected(response, client, sso_log, status=400, code="sso.state.unknown", ops=[op])
    assert "alert(1)" not in response.content.decode()
    assert state in pending_flows(client)


@pytest.mark.case("AZR-06")
def test_azr_06_error_response_with_other_providers_iss(client, op, source, attacker_source, sso_log):
    op.scenario["authorize"] = {"error": "access_denied", "iss": "https://op.example/attacker"}
    url = begin(client)
    response = finish(client, op, url)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.iss_mismatch",
        ops=[op],
        state=query_of(url)["state"],
    )
    assert "refused at the identity provider" not in response.content.decode()


@pytest.mark.case("AZR-06")
def test_azr_06_error_code_not_echoed_verbatim(client, op, source, sso_log):
    op.scenario["authorize"] = {"error": "<b>x</b>"}
    url = begin(client)
    response = finish(client, op, url)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.authorize.invalid",
        ops=[op],
        state=query_of(url)["state"],
    )
    assert "<b>" not in response.content.decode() and "<b>" not in sso_log.text


@pytest.mark.case("AZR-07")
def test_azr_07_duplicate_code(client, op, source, sso_log):
    url = begin(client)
    secrets = flow_secrets(client)
    response = client.get(local(with_raw_query(op.authorize(url), "code=attacker-code")))
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.duplicate_param",
        ops=[op],
        state=query_of(url)["state"],
        secrets=secrets | {"attacker-code"},
    )


@pytest.mark.case("AZR-07")
@pytest.mark.parametrize("second", ["same", "other"])
def test_azr_07_duplicate_state(client, op, source, sso_log, second):
    url = begin(client)
    state = query_of(url)["state"]
    secrets = flow_secrets(client)
    extra = state if second == "same" else real_secrets.token_urlsafe(32)
    response = client.get(local(with_raw_query(op.authorize(url), urlencode({"state": extra}))))
    assert_rejected(
        response, client, sso_log, status=400, code="sso.callback.duplicate_param", ops=[op], secrets=secrets
    )


@pytest.mark.case("AZR-07")
def test_azr_07_parameters_in_query_and_body(client, op, source, sso_log):
    url = begin(client)
    secrets = flow_secrets(client)
    callback_url = op.authorize(url)
    response = client.generic(
        "GET", local(callback_url), "code=attacker-code", content_type="application/x-www-form-urlencoded"
    )
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.callback.bad_method",
        ops=[op],
        state=query_of(url)["state"],
        secrets=secrets | {"attacker-code"},
    )


@pytest.mark.case("AZR-07")
def test_azr_07_front_channel_tokens_ignored(client, op, attacker_op, source, sso_log):
    url = begin(client)
    forged_claims = attacker_op.id_claims("bob", nonce=query_of(url)["nonce"], iss=attacker_op.issuer)
    forged_id_token = attacker_op.mint(forged_claims)
    forged_access_token = "at-front-channel-" + real_secrets.token_urlsafe(8)
    op.scenario["authorize"] = {
        "extra": {"access_token": forged_access_token, "id_token": forged_id_token, "token_type": "Bearer"},
        "suffix": "#" + urlencode({"access_token": forged_access_token, "id_token": forged_id_token}),
    }
    response = finish(client, op, url)
    assert response.status_code == 303
    identity = Identity.objects.get()
    assert identity.subject == "alice-sub"
    assert identity.user.username == "alice"
    (userinfo_request,) = calls(op, "/userinfo")
    assert forged_access_token not in userinfo_request.headers["Authorization"]
    assert attacker_op.requests == []
    stored = repr(dict(client.session.items())) + repr(identity.claims)
    for value in (forged_access_token, forged_id_token):
        assert value not in stored
        assert value not in sso_log.text


@pytest.mark.case("AZR-07")
def test_azr_07_id_token_iss_disagrees_with_iss_parameter(
    client, op, attacker_op, source, attacker_source, sso_log
):
    op.scenario["id_token"] = {"iss": attacker_op.issuer}
    url = begin(client)
    secrets = flow_secrets(client)
    response = finish(client, op, url)
    assert query_of(calls(op, "/authorize")[0].url)["state"] == query_of(url)["state"]
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.iss_mismatch",
        ops=[op, attacker_op],
        state=query_of(url)["state"],
        token_calls=1,
        secrets=secrets,
    )


@pytest.mark.case("AZR-08")
def test_azr_08_form_post_not_accepted(client, op, source, sso_log):
    url = begin(client)
    assert "response_mode" not in query_of(url)
    callback_url = op.authorize(url)
    response = client.post(urlsplit(callback_url).path, query_of(callback_url))
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert "no-store" in response["Cache-Control"]
    assert query_of(url)["state"] in pending_flows(client)
    assert "_auth_user_id" not in client.session
    assert calls(op, "/token") == []
    # The same POST from a cross-site page, with Django's CSRF checks on: still refused, nothing touched.
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    assert strict.post(urlsplit(callback_url).path, query_of(callback_url)).status_code in {403, 405}
    assert query_of(url)["state"] in pending_flows(client)
    assert calls(op, "/token") == []


@pytest.mark.case("AZR-08")
def test_azr_08_callback_without_session_cookie(client, op, source, sso_log):
    url = begin(client)
    callback_url = op.authorize(url)
    cookieless = Client()
    response = cookieless.get(local(callback_url))
    assert_rejected(response, cookieless, sso_log, status=400, code="sso.state.unknown", ops=[op])
    assert "session expired" in response.content.decode().lower()
    # Never "any pending flow": the real browser's flow is untouched and still works.
    assert query_of(url)["state"] in pending_flows(client)
    assert client.get(local(callback_url)).status_code == 303


@pytest.mark.case("AZR-09")
def test_azr_09_injected_code_nonce_mismatch(client, op, source, sso_log):
    op.scenario["pkce"] = "ignore"
    victim = Client()
    stolen = query_of(op.authorize(begin(victim), user="alice"))["code"]
    attacker_url = begin(client)
    secrets = flow_secrets(client) | flow_secrets(victim)
    injected = f"/sso/honest/callback/?{urlencode({'code': stolen, 'state': query_of(attacker_url)['state'], 'iss': op.issuer})}"
    response = client.get(injected)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.nonce_mismatch",
        ops=[op],
        state=query_of(attacker_url)["state"],
        token_calls=1,
        secrets=secrets,
    )
    # Every token of that response is dropped: no UserInfo call, nothing stored.
    assert Identity.objects.count() == 0
    assert get_user_model().objects.count() == 0
    issued = set(op.access_tokens)
    assert not any(token in repr(dict(client.session.items())) for token in issued)


@pytest.mark.case("AZR-09")
def test_azr_09_injected_code_refused_by_pkce(client, op, source, sso_log):
    victim = Client()
    stolen = query_of(op.authorize(begin(victim), user="alice"))["code"]
    attacker_url = begin(client)
    secrets = flow_secrets(client) | flow_secrets(victim)
    injected = f"/sso/honest/callback/?{urlencode({'code': stolen, 'state': query_of(attacker_url)['state'], 'iss': op.issuer})}"
    response = client.get(injected)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.token.invalid_grant",
        ops=[op],
        state=query_of(attacker_url)["state"],
        token_calls=1,
        secrets=secrets,
    )
    assert "already used or has expired" in response.content.decode()
