"""RP-CASES section L: the OAuth 1.0a consumer (OA1-01 .. OA1-03).

Against a real OAuth 1.0a provider on loopback (Authlib's server side, tests/support/
oauth1_provider.py), which records every request. Signatures are also re-computed here with an
independent RFC 5849 implementation, so the test does not trust the library that signed them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from django.test import Client

from django_sso.internal.flow import SESSION_KEY
from django_sso.models import Identity
from tests.rejections import assert_no_secrets, assert_reason_logged, log_text
from tests.support.oauth1_provider import CONSUMER_SECRET

CALLBACK = "http://testserver/sso/tw/callback/"


def calls(provider: Any, path: str) -> list[Any]:
    return [r for r in provider.requests if r.path == path]


def pending(client: Client) -> dict[str, Any]:
    return dict(client.session.get(SESSION_KEY, {}))


def provider_secrets(provider: Any) -> set[str]:
    """Every credential the provider issued or received: tokens, secrets, verifiers."""
    found = {CONSUMER_SECRET}
    for credential in [*provider.temporary.values(), *provider.tokens.values()]:
        found.update(v for k, v in credential.items() if k.startswith("oauth_") and k != "oauth_callback")
    for request in provider.requests:
        found.update(
            v for k, v in request.oauth.items() if k in {"oauth_token", "oauth_verifier", "oauth_signature"}
        )
        found.update(
            v for k, v in parse_qsl(urlsplit(request.url).query) if k in {"oauth_token", "oauth_verifier"}
        )
    return {s for s in found if s}


def assert_oauth1_rejected(
    response: Any, client: Client, provider: Any, caplog: Any, *, status: int, code: str, flows_left: int = 0
) -> None:
    """What RP-CASES calls reject: error page, nobody signed in, flow gone, no token call, no leak.

    ``flows_left``: a callback whose token names no flow of this browser cannot consume one.
    """
    assert response.status_code == status, response.content[:300]
    assert "django_sso/error.html" in [t.name for t in response.templates]
    assert response.context["code"] == code
    assert "no-store" in response["Cache-Control"]
    assert "_auth_user_id" not in client.session
    assert len(pending(client)) == flows_left
    assert calls(provider, "/oauth/access_token") == []
    assert Identity.objects.count() == 0
    assert_reason_logged(caplog, code)
    assert_no_secrets(log_text(caplog), provider_secrets(provider))


# ---- OA1-01 ---------------------------------------------------------------------------------


@pytest.mark.case("OA1-01")
@pytest.mark.parametrize("confirmed", [None, "false", "", "1"], ids=["absent", "false", "empty", "one"])
def test_oa1_01_request_token_without_callback_confirmed_aborts(
    client, oauth1_provider, oauth1_source, sso_log, confirmed
):
    oauth1_provider.knobs["callback_confirmed"] = confirmed
    response = client.post("/sso/tw/login/")
    # Aborted before the browser is sent anywhere: a 1.0 provider may ignore our callback.
    assert response.status_code == 502
    assert "Location" not in response
    assert response.context["code"] == "sso.oauth1.callback_not_confirmed"
    assert pending(client) == {}
    assert [r.path for r in oauth1_provider.requests] == ["/oauth/request_token"]
    # oauth_callback was sent in the request-token step (RFC 5849 2.1), signed with the rest.
    assert oauth1_provider.requests[0].oauth["oauth_callback"] == CALLBACK
    assert_reason_logged(sso_log, "sso.oauth1.callback_not_confirmed")
    assert_no_secrets(log_text(sso_log), provider_secrets(oauth1_provider))


@pytest.mark.case("OA1-01")
@pytest.mark.parametrize("confirmed", ["true", "True"])
def test_oa1_01_a_confirmed_callback_proceeds(
    client, oauth1_provider, oauth1_source, oauth1_sign_in, confirmed
):
    # "True" is what Authlib's own provider writes; the confirmation is what matters.
    oauth1_provider.knobs["callback_confirmed"] = confirmed
    assert oauth1_sign_in().response.status_code == 303


# ---- OA1-02 ---------------------------------------------------------------------------------


@pytest.mark.case("OA1-02")
def test_oa1_02_session_fixation_with_the_attackers_request_token(
    client, oauth1_provider, oauth1_source, sso_log
):
    # The attacker starts a flow in their own browser and lures the victim into authorizing it.
    attacker = Client()
    lure = attacker.post("/sso/tw/login/")["Location"]
    # The victim has a sign-in of their own in progress (or none at all).
    client.post("/sso/tw/login/")
    victims_flow = set(pending(client))
    callback = oauth1_provider.authorize(lure, "alice")
    parts = urlsplit(callback)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 400
    assert response.context["code"] == "sso.oauth1.unknown_token"
    assert "_auth_user_id" not in client.session
    assert set(pending(client)) == victims_flow
    assert calls(oauth1_provider, "/oauth/access_token") == []
    assert Identity.objects.count() == 0
    assert_reason_logged(sso_log, "sso.oauth1.unknown_token")
    assert_no_secrets(log_text(sso_log), provider_secrets(oauth1_provider))
    # And the attacker's browser cannot finish it either: it never saw the verifier.
    assert "_auth_user_id" not in attacker.session


def drop(name: str) -> Any:
    def tamper(url: str) -> str:
        parts = urlsplit(url)
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in parse_qsl(parts.query) if k != name)
        return parts._replace(query=query).geturl()

    return tamper


def swap_case(url: str) -> str:
    parts = urlsplit(url)
    params = [(k, v.swapcase() if k == "oauth_token" else v) for k, v in parse_qsl(parts.query)]
    return parts._replace(query="&".join(f"{k}={quote(v, safe='')}" for k, v in params)).geturl()


@pytest.mark.case("OA1-02")
@pytest.mark.parametrize(
    ("tamper", "code", "flows_left"),
    [
        (drop("oauth_verifier"), "sso.oauth1.no_verifier", 0),
        # These name no flow of this browser, so none is consumed; it expires on its own.
        (drop("oauth_token"), "sso.oauth1.no_token", 1),
        (swap_case, "sso.oauth1.unknown_token", 1),
    ],
    ids=["no verifier", "no token", "token case changed"],
)
def test_oa1_02_callback_without_a_matching_token_or_verifier(
    client, oauth1_provider, oauth1_source, oauth1_sign_in, sso_log, tamper, code, flows_left
):
    result = oauth1_sign_in(tamper=tamper)
    assert_oauth1_rejected(
        result.response, client, oauth1_provider, sso_log, status=400, code=code, flows_left=flows_left
    )


@pytest.mark.case("OA1-02")
def test_oa1_02_temporary_credentials_are_single_use(
    client, oauth1_provider, oauth1_source, oauth1_sign_in, sso_log
):
    result = oauth1_sign_in()
    assert result.response.status_code == 303
    assert pending(client) == {}
    # The verifier reached the access-token step, once.
    (exchange,) = calls(oauth1_provider, "/oauth/access_token")
    assert (
        exchange.oauth["oauth_verifier"]
        == dict(parse_qsl(urlsplit(result.callback_url).query))["oauth_verifier"]
    )
    # Replaying the same callback in the same browser finds nothing.
    client.logout()
    parts = urlsplit(result.callback_url)
    replay = client.get(f"{parts.path}?{parts.query}")
    assert replay.status_code == 400
    assert replay.context["code"] == "sso.oauth1.unknown_token"
    assert len(calls(oauth1_provider, "/oauth/access_token")) == 1
    assert "_auth_user_id" not in client.session


@pytest.mark.case("OA1-02")
def test_oa1_02_a_missing_verifier_burns_the_flow(client, oauth1_provider, oauth1_source, sso_log):
    start = client.post("/sso/tw/login/")
    callback = oauth1_provider.authorize(start["Location"])
    parts = urlsplit(callback)
    without = drop("oauth_verifier")(callback)
    first = client.get(f"{urlsplit(without).path}?{urlsplit(without).query}")
    assert first.context["code"] == "sso.oauth1.no_verifier"
    # The genuine callback afterwards is refused too: the temporary credentials were used up.
    second = client.get(f"{parts.path}?{parts.query}")
    assert second.status_code == 400
    assert second.context["code"] == "sso.oauth1.unknown_token"
    assert calls(oauth1_provider, "/oauth/access_token") == []


# ---- OA1-03 ---------------------------------------------------------------------------------


def _enc(value: str) -> str:
    """RFC 5849 3.6: percent-encode everything but ALPHA, DIGIT, '-', '.', '_', '~'."""
    return quote(value, safe="-._~")


def _auth_params(header: str) -> list[tuple[str, str]]:
    assert header.startswith("OAuth "), header
    params = []
    for item in header[len("OAuth ") :].split(","):
        name, _, value = item.strip().partition("=")
        params.append((_unquote(name), _unquote(value.strip('"'))))
    return params


def _unquote(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


def base_string(method: str, url: str, headers: dict[str, str], body: str) -> str:
    """RFC 5849 3.4.1, written out independently of Authlib."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in {("http", 80), ("https", 443)} else f"{host}:{port}"
    uri = f"{scheme}://{netloc}{parts.path or '/'}"
    params = parse_qsl(parts.query, keep_blank_values=True)
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        params += parse_qsl(body, keep_blank_values=True)
    params += [
        (k, v) for k, v in _auth_params(headers["Authorization"]) if k not in {"realm", "oauth_signature"}
    ]
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in params))
    return "&".join([method.upper(), _enc(uri), _enc(normalized)])


def hmac_sha1(base: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{_enc(consumer_secret)}&{_enc(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()


@pytest.mark.case("OA1-03")
def test_oa1_03_the_independent_base_string_matches_rfc5849_example():
    # RFC 5849 3.4.1.1's example request and its signature base string.
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": 'OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", '
        'oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", '
        'oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", '
        'oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D"',
    }
    url = "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b"
    assert base_string("POST", url, headers, "c2&a3=2+q") == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
        "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
        "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
        "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
        "9d7dh3k39sjv7"
    )


@pytest.mark.case("OA1-03")
def test_oa1_03_signatures_nonces_and_timestamps(client, oauth1_provider, oauth1_source, oauth1_sign_in):
    for _ in range(2):
        assert oauth1_sign_in().response.status_code == 303
        client.logout()
    signed = [r for r in oauth1_provider.requests if r.path != "/oauth/authorize"]
    assert len(signed) == 6
    now = time.time()
    nonces = []
    for request in signed:
        oauth = request.oauth
        assert request.headers["Authorization"].startswith("OAuth ")
        assert oauth["oauth_signature_method"] == "HMAC-SHA1"  # never PLAINTEXT, never over http
        assert oauth["oauth_version"] == "1.0"
        assert abs(int(oauth["oauth_timestamp"]) - now) < 60
        nonces.append(oauth["oauth_nonce"])
        expected = hmac_sha1(
            base_string(request.method, request.url, request.headers, request.body),
            CONSUMER_SECRET,
            request.token_secret,
        )
        assert hmac.compare_digest(oauth["oauth_signature"], expected), request.path
        assert request.status == 200
    assert len(set(nonces)) == len(nonces)
    assert all(len(n) >= 16 for n in nonces)
    # The token secret signed the access-token request: a request without it must not verify.
    exchange = next(r for r in signed if r.path == "/oauth/access_token")
    forged = hmac_sha1(
        base_string(exchange.method, exchange.url, exchange.headers, exchange.body), CONSUMER_SECRET, ""
    )
    assert forged != exchange.oauth["oauth_signature"]


@pytest.mark.case("OA1-03")
def test_oa1_03_identity_is_the_user_id_not_the_screen_name(
    client, oauth1_provider, oauth1_source, oauth1_sign_in
):
    alice, bob = oauth1_provider.users["alice"], oauth1_provider.users["bob"]
    saved = (dict(alice), dict(bob))
    try:
        assert oauth1_sign_in().response.status_code == 303
        first = Identity.objects.get()
        assert first.subject == str(alice["id"])
        client.logout()
        # Alice renames herself, and changes her address: still the same person.
        alice.update(screen_name="alice_renamed", email="alice@elsewhere.example")
        assert oauth1_sign_in().response.status_code == 303
        assert Identity.objects.count() == 1
        assert client.session["_auth_user_id"] == str(first.user_id)
        client.logout()
        # Bob takes the freed screen name "alice": he never gets Alice's account.
        bob.update(screen_name="alice")
        bob_browser = Client()
        assert oauth1_sign_in(login="bob", browser=bob_browser).response.status_code == 303
        bobs = Identity.objects.get(subject=str(bob["id"]))
        assert bobs.user_id != first.user_id
        assert bob_browser.session["_auth_user_id"] == str(bobs.user_id)
    finally:
        alice.clear(), alice.update(saved[0])
        bob.clear(), bob.update(saved[1])
