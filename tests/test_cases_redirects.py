"""RP-CASES K: where the browser is sent after sign-in and sign-out (RED)."""

from __future__ import annotations

import base64
import re
import secrets
from urllib.parse import urlencode

import pytest
from django.test import Client

from tests.rejections import assert_rejected, begin, local, pending_flows, query_of, with_params

GOOD_NEXT = "/shop/orders/?a=1"
BAD_NEXT = [
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\/evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "http://evil.com",
    "https://app.example.com@evil.com",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.com",
    "/%09/evil.com",
    "\t//evil.com",
    "/%5Cevil.com",
    "/" + "a" * 5000,
    "/%2F/evil.com",
    "http://testserver/shop/",
    " /shop/",
    "/shop/\r\nLocation: https://evil.com",
]
BAD_IDS = [
    "double-slash",
    "triple-slash",
    "slash-backslash",
    "backslash-slash",
    "double-backslash",
    "https-no-slashes",
    "http-absolute",
    "userinfo",
    "javascript",
    "data",
    "encoded-double-slash",
    "encoded-tab",
    "leading-tab",
    "encoded-backslash",
    "over-long",
    "slash-encoded-slash",
    "absolute-same-host",
    "leading-space",
    "header-injection",
]
#: Parameters providers or attackers add to steer the browser after a callback.
REDIRECT_PARAMS = {
    "next": "https://evil.com/",
    "RelayState": "https://evil.com/relay",
    "redirect": "//evil.com",
    "redirect_to": "https://evil.com/",
    "return_to": "https://evil.com/",
    "redirect_uri": "https://evil.com/cb",
}


def sign_in(client: Client, op, **data: str):
    return client.get(local(op.authorize(begin(client, **data))))


@pytest.mark.case("RED-01")
@pytest.mark.parametrize("next_url", BAD_NEXT, ids=BAD_IDS)
def test_red_01_unsafe_next_falls_back(client, op, source, settings, next_url):
    settings.DJANGO_SSO_LOGIN_REDIRECT_URL = "/welcome/"
    url = begin(client, next=next_url)
    assert "evil" not in url
    assert pending_flows(client)[query_of(url)["state"]]["next_url"] == ""
    response = client.get(local(op.authorize(url)))
    assert response.status_code == 303
    assert response["Location"] == "/welcome/"


@pytest.mark.case("RED-01")
@pytest.mark.parametrize("next_url", BAD_NEXT, ids=BAD_IDS)
def test_red_01_unsafe_next_in_query_string(client, op, source, next_url):
    response = client.post("/sso/honest/login/?" + urlencode({"next": next_url}))
    assert response.status_code == 302
    state = query_of(response["Location"])["state"]
    assert pending_flows(client)[state]["next_url"] == ""


@pytest.mark.case("RED-01")
@pytest.mark.parametrize("next_url", BAD_NEXT, ids=BAD_IDS)
def test_red_01_unsafe_next_on_confirmation_and_logout(client, op, source, settings, next_url):
    settings.LOGOUT_REDIRECT_URL = "/signed-out/"
    page = client.get("/sso/honest/login/", {"next": next_url})
    assert page.status_code == 200
    assert 'name="next"' not in page.content.decode()
    assert 'name="next"' not in client.get("/sso/logout/", {"next": next_url}).content.decode()
    assert sign_in(client, op).status_code == 303
    response = client.post("/sso/logout/", {"next": next_url})
    assert response.status_code == 303
    assert response["Location"] == "/signed-out/"
    assert "_auth_user_id" not in client.session


@pytest.mark.case("RED-01")
def test_red_01_same_origin_path_kept(client, op, source):
    page = client.get("/sso/honest/login/", {"next": GOOD_NEXT}).content.decode()
    assert 'name="next" value="/shop/orders/?a=1"' in page
    response = sign_in(client, op, next=GOOD_NEXT)
    assert response.status_code == 303
    assert response["Location"] == GOOD_NEXT
    response = client.post("/sso/logout/", {"next": GOOD_NEXT})
    assert response["Location"] == GOOD_NEXT


@pytest.mark.case("RED-02")
def test_red_02_redirect_params_in_callback_ignored(client, op, source):
    url = begin(client, next="/shop/")
    response = client.get(local(with_params(op.authorize(url), **REDIRECT_PARAMS)))
    assert response.status_code == 303
    assert response["Location"] == "/shop/"


@pytest.mark.case("RED-02")
def test_red_02_redirect_params_without_next_ignored(client, op, source):
    url = begin(client)
    response = client.get(local(with_params(op.authorize(url), **REDIRECT_PARAMS)))
    assert response.status_code == 303
    assert response["Location"] == "/"


@pytest.mark.case("RED-02")
def test_red_02_next_kept_server_side_state_opaque(client, op, source):
    url = begin(client, next="/shop/orders/")
    state = query_of(url)["state"]
    # next lives only in the server-side flow record; state is random, not an encoded URL.
    assert pending_flows(client)[state]["next_url"] == "/shop/orders/"
    assert "shop" not in url
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", state)
    raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
    assert b"shop" not in raw and b"{" not in raw[:1]


@pytest.mark.case("RED-02")
@pytest.mark.parametrize("tamper", ["flip-char", "append-url", "replace"])
def test_red_02_tampered_state_rejected(client, op, source, sso_log, tamper):
    url = begin(client, next="/shop/")
    state = query_of(url)["state"]
    forged = {
        "flip-char": state[:-1] + ("A" if state[-1] != "A" else "B"),
        "append-url": state + "https://evil.com/",
        "replace": secrets.token_urlsafe(32),
    }[tamper]
    response = client.get(local(with_params(op.authorize(url), state=forged)))
    assert_rejected(response, client, sso_log, status=400, code="sso.state.unknown", ops=[op], state=forged)
    assert "evil" not in response.get("Location", "")


def assert_clean_redirect(response, location: str) -> None:
    assert response.status_code == 303
    assert response["Location"] == location
    assert "code=" not in location and "state=" not in location
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]


def assert_no_third_party_resources(html: str) -> None:
    assert not re.search(r"""<(script|link|img|iframe)\b""", html, re.I)
    for url in re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)""", html, re.I):
        assert url.startswith("/") and not url.startswith("//"), url


@pytest.mark.case("RED-03")
def test_red_03_callback_answers_303_to_clean_url(client, op, source):
    response = sign_in(client, op, next=GOOD_NEXT)
    assert_clean_redirect(response, GOOD_NEXT)


@pytest.mark.case("RED-03")
def test_red_03_callback_error_page(client, op, source):
    op.scenario["authorize"] = {"error": "access_denied"}
    response = sign_in(client, op)
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert '<meta name="referrer" content="no-referrer">' in html
    assert_no_third_party_resources(html)


@pytest.mark.case("RED-03")
def test_red_03_form_post_callback_refused_without_caching(client, op, source):
    callback_url = op.authorize(begin(client))
    response = client.post(local(callback_url).split("?")[0], query_of(callback_url))
    assert response.status_code == 405
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.case("RED-03")
def test_red_03_logout_post(client, op, source):
    assert sign_in(client, op).status_code == 303
    page = client.get("/sso/logout/")
    assert_no_third_party_resources(page.content.decode())
    response = client.post("/sso/logout/", {"next": GOOD_NEXT})
    assert_clean_redirect(response, GOOD_NEXT)
