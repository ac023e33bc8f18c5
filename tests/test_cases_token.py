"""RP-CASES D: the token endpoint (TOK) and the other back-channel calls of a sign-in."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest
import requests
from django.test import Client

from django_sso.internal import callback as callback_module
from django_sso.internal import discovery
from django_sso.internal.oauth2 import DEFAULT_ACCESS_TOKEN_LIFETIME
from tests.conftest import make_source
from tests.fakeop import DROP, FakeOP, Recorded
from tests.rejections import assert_rejected, begin, calls, flow_secrets, local, query_of

COLLECTOR = "https://collector.example/steal"
#: A string placed in provider bodies that must never reach a log line.
BODY_MARKER = "BODY-MARKER-7f3a"


def sign_in(client: Client, op: FakeOP, slug: str = "honest") -> tuple[Any, str, set[str]]:
    """Run a sign-in; return the callback response, the state and the flow's secrets."""
    url = begin(client, slug)
    secrets = flow_secrets(client)
    return client.get(local(op.authorize(url))), query_of(url)["state"], secrets


def require_client_auth(op: FakeOP, method: str) -> None:
    """Make ``op``'s token endpoint authenticate the client with ``method`` (RFC 6749 2.3.1)."""

    def token(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        recorded = Recorded("POST", request.url or "", dict(request.headers), body)
        header = recorded.headers.get("Authorization", "")
        if method == "client_secret_basic" and header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode("ascii").partition(":")
            ok = "client_secret" not in recorded.form and (unquote_plus(user), unquote_plus(password)) == (
                op.client_id,
                op.client_secret,
            )
        elif method == "client_secret_post" and not header:
            form = recorded.form
            ok = (form.get("client_id"), form.get("client_secret")) == (op.client_id, op.client_secret)
        else:
            ok = False
        if not ok:
            return 401, {"Content-Type": "application/json"}, b'{"error": "invalid_client"}'
        return op.token(recorded)

    op.scenario.setdefault("respond", {})["/token"] = token


# ---- TOK-01: no redirects on any back-channel call -------------------------------------------


@pytest.mark.case("TOK-01")
@pytest.mark.parametrize("status", [302, 307, 308])
@pytest.mark.parametrize(
    ("path", "code", "token_calls", "userinfo_calls"),
    [
        ("/token", "sso.http.redirect_refused", 1, 0),
        ("/userinfo", "sso.http.redirect_refused", 1, 1),
        ("/jwks", "sso.jwks.unavailable", 1, 0),
    ],
)
def test_tok_01_back_channel_redirect_not_followed(
    client, network, op, source, sso_log, status, path, code, token_calls, userinfo_calls
):
    op.scenario["respond"] = {path: (status, {"Location": COLLECTOR}, b"")}
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=502,
        code=code,
        ops=[op],
        state=state,
        token_calls=token_calls,
        userinfo_calls=userinfo_calls,
        secrets=secrets,
    )
    assert network.collector == []
    assert len(calls(op, path)) == 1


@pytest.mark.case("TOK-01")
@pytest.mark.parametrize("status", [302, 307, 308])
def test_tok_01_discovery_redirect_not_followed(db, network, op, status):
    op.scenario["respond"] = {"/.well-known/openid-configuration": (status, {"Location": COLLECTOR}, b"")}
    with pytest.raises(Exception) as caught:
        discovery.fetch_metadata(op.url("/.well-known/openid-configuration"))
    assert getattr(caught.value, "code", None) == "sso.http.redirect_refused"
    assert network.collector == []


@pytest.mark.case("TOK-01")
def test_tok_01_back_channel_calls_use_timeouts_and_tls(client, network, op, source, monkeypatch):
    sent = []
    real_send = network.send

    def send(request, **kwargs):
        sent.append((request.url, kwargs))
        return real_send(request, **kwargs)

    monkeypatch.setattr(network, "send", send)
    response, _, _ = sign_in(client, op)
    assert response.status_code == 303
    assert {url for url, _ in sent} == {op.url("/token"), op.url("/jwks"), op.url("/userinfo")}
    for _url, kwargs in sent:
        assert kwargs["timeout"] == (5.0, 10.0)
        assert kwargs["verify"] is True
        assert not kwargs.get("proxies")


# ---- TOK-02: client authentication ------------------------------------------------------------

AWKWARD = [
    ("rp:client+1%/é", "s:e+c%r/e-ü-0123456789-0123456789"),
    ("plain-client", "secret with spaces & = ; and ünïcode:+%2F"),
]


@pytest.mark.case("TOK-02")
@pytest.mark.parametrize(("client_id", "client_secret"), AWKWARD, ids=["colon-plus-percent", "spaces"])
def test_tok_02_client_secret_basic_form_encodes_credentials(
    client, network, db, sso_log, client_id, client_secret
):
    op = FakeOP("https://op.example/odd", client_id=client_id, client_secret=client_secret)
    network.ops.append(op)
    make_source(op, "odd", token_endpoint_auth_method="client_secret_basic")
    require_client_auth(op, "client_secret_basic")
    response, _, _ = sign_in(client, op, "odd")
    assert response.status_code == 303, response.content[:300]
    (token_request,) = calls(op, "/token")
    user, _, password = (
        base64.b64decode(token_request.headers["Authorization"][6:]).decode("ascii").partition(":")
    )
    # RFC 6749 2.3.1: each part form-urlencoded before Base64, so ':' inside them is escaped.
    assert user == quote(client_id, safe="")
    assert password == quote(client_secret, safe="")
    assert "client_secret" not in token_request.form
    assert client_secret not in sso_log.text and quote(client_secret, safe="") not in sso_log.text


@pytest.mark.case("TOK-02")
@pytest.mark.parametrize(("client_id", "client_secret"), AWKWARD, ids=["colon-plus-percent", "spaces"])
def test_tok_02_client_secret_post(client, network, db, sso_log, client_id, client_secret):
    op = FakeOP("https://op.example/odd", client_id=client_id, client_secret=client_secret)
    network.ops.append(op)
    make_source(op, "odd", token_endpoint_auth_method="client_secret_post")
    require_client_auth(op, "client_secret_post")
    response, _, _ = sign_in(client, op, "odd")
    assert response.status_code == 303, response.content[:300]
    (token_request,) = calls(op, "/token")
    assert "Authorization" not in token_request.headers
    assert token_request.form["client_id"] == client_id
    assert token_request.form["client_secret"] == client_secret
    assert client_secret not in sso_log.text


@pytest.mark.case("TOK-02")
def test_tok_02_provider_refuses_client_auth(client, op, source, sso_log):
    require_client_auth(op, "client_secret_post")
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=502,
        code="sso.token.status",
        ops=[op],
        state=state,
        token_calls=1,
        secrets=secrets,
    )


# ---- TOK-03: token_type -----------------------------------------------------------------------


@pytest.mark.case("TOK-03")
@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_tok_03_bearer_any_case_accepted(client, op, source, token_type):
    op.scenario["token"] = {"token_type": token_type}
    response, _, _ = sign_in(client, op)
    assert response.status_code == 303
    assert "_auth_user_id" in client.session


@pytest.mark.case("TOK-03")
@pytest.mark.parametrize(
    "token_type",
    ["mac", "N_A", DROP, "DPoP", "", "Bearer ", 1, None, ["Bearer"]],
    ids=["mac", "N_A", "missing", "DPoP", "empty", "trailing-space", "int", "null", "list"],
)
def test_tok_03_other_token_type_rejected(client, op, source, sso_log, token_type):
    op.scenario["token"] = {"token_type": token_type}
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=502,
        code="sso.token.bad_token_type",
        ops=[op],
        state=state,
        token_calls=1,
        secrets=secrets,
    )


# ---- TOK-04: expires_in and scope ------------------------------------------------------------


@pytest.fixture
def completed(monkeypatch):
    """Capture what the protocol half of each sign-in returned (the normalised token response)."""
    seen = []
    real = callback_module.complete

    def spy(request, source):
        result = real(request, source)
        seen.append(result)
        return result

    monkeypatch.setattr(callback_module, "complete", spy)
    return seen


@pytest.mark.case("TOK-04")
def test_tok_04_no_expires_in_no_scope(client, op, source, completed):
    op.scenario["token"] = {"expires_in": DROP, "scope": DROP}
    before = int(time.time())
    response, _, _ = sign_in(client, op)
    assert response.status_code == 303
    (result,) = completed
    assert result.token["scope"] == ["openid", "email", "profile"]
    assert before + DEFAULT_ACCESS_TOKEN_LIFETIME <= result.token["expires_at"]
    assert result.token["expires_at"] <= int(time.time()) + DEFAULT_ACCESS_TOKEN_LIFETIME


@pytest.mark.case("TOK-04")
@pytest.mark.parametrize("expires_in", ["3600", -5, 0, True, None])
def test_tok_04_unusable_expires_in_gets_default(client, op, source, completed, expires_in):
    op.scenario["token"] = {"expires_in": expires_in}
    response, _, _ = sign_in(client, op)
    assert response.status_code == 303
    lifetime = completed[0].token["expires_at"] - time.time()
    assert 0 < lifetime <= DEFAULT_ACCESS_TOKEN_LIFETIME


@pytest.mark.case("TOK-04")
def test_tok_04_narrower_scope_is_what_is_kept(client, op, source, completed):
    op.scenario["token"] = {"scope": "openid", "expires_in": 120}
    response, _, _ = sign_in(client, op)
    assert response.status_code == 303
    (result,) = completed
    assert result.token["scope"] == ["openid"]
    assert result.token["expires_at"] - time.time() <= 120


# ---- TOK-05: broken token responses ----------------------------------------------------------

OVERSIZE = b'{"access_token": "' + b"x" * (1024 * 1024) + BODY_MARKER.encode() + b'"}'


@pytest.mark.case("TOK-05")
@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ((200, {"Content-Type": "text/html"}, f"<html>{BODY_MARKER}</html>".encode()), "sso.http.not_json"),
        ((200, {"Content-Type": "text/plain"}, f'{{"x": "{BODY_MARKER}"}}'.encode()), "sso.http.not_json"),
        ((200, {"Content-Type": "application/json"}, f'["{BODY_MARKER}"]'.encode()), "sso.http.not_json"),
        ((200, {"Content-Type": "application/json"}, f"{BODY_MARKER} {{".encode()), "sso.http.not_json"),
        ((200, {"Content-Type": "application/json"}, OVERSIZE), "sso.http.too_large"),
        (
            (200, {"Content-Type": "application/json", "Content-Length": str(len(OVERSIZE))}, OVERSIZE),
            "sso.http.too_large",
        ),
        ((500, {"Content-Type": "text/html"}, f"<h1>{BODY_MARKER}</h1>".encode()), "sso.token.status"),
        (
            (503, {"Content-Type": "application/json"}, f'{{"x": "{BODY_MARKER}"}}'.encode()),
            "sso.token.status",
        ),
        (
            (
                400,
                {"Content-Type": "application/json"},
                f'{{"error": "invalid_client", "d": "{BODY_MARKER}"}}'.encode(),
            ),
            "sso.token.error",
        ),
        (
            (
                200,
                {"Content-Type": "application/json"},
                f'{{"error": "server_error", "d": "{BODY_MARKER}"}}'.encode(),
            ),
            "sso.token.error",
        ),
    ],
    ids=[
        "html",
        "text-plain",
        "json-array",
        "not-json",
        "oversize",
        "oversize-declared",
        "500",
        "503",
        "400-other-error",
        "200-error",
    ],
)
def test_tok_05_broken_token_response(client, op, source, sso_log, answer, code):
    op.scenario["respond"] = {"/token": answer}
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=502,
        code=code,
        ops=[op],
        state=state,
        token_calls=1,
        secrets=secrets,
    )
    assert BODY_MARKER not in sso_log.text


@pytest.mark.case("TOK-05")
def test_tok_05_no_id_token(client, op, source, sso_log):
    op.scenario["token"] = {"id_token": DROP}
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=502,
        code="sso.token.no_id_token",
        ops=[op],
        state=state,
        token_calls=1,
        secrets=secrets,
    )


@pytest.mark.case("TOK-05")
@pytest.mark.parametrize("failure", [requests.ReadTimeout, requests.ConnectTimeout], ids=["stall", "connect"])
def test_tok_05_token_endpoint_timeout(client, network, op, source, sso_log, failure):
    network.failures[op.url("/token")] = failure()
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=502,
        code="sso.token.timeout",
        ops=[op],
        state=state,
        secrets=secrets,
    )


@pytest.mark.case("TOK-05")
def test_tok_05_invalid_grant_shown_once_not_retried(client, op, source, sso_log):
    op.scenario["respond"] = {
        "/token": (400, {"Content-Type": "application/json"}, json.dumps({"error": "invalid_grant"}).encode())
    }
    response, state, secrets = sign_in(client, op)
    assert_rejected(
        response,
        client,
        sso_log,
        status=400,
        code="sso.token.invalid_grant",
        ops=[op],
        state=state,
        token_calls=1,
        secrets=secrets,
    )
    assert response.content.decode().count("already used or has expired") == 1
