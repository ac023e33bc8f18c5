"""internal/http.py: no redirects, a byte cap, default timeouts, JSON only, and the URL rules."""

from __future__ import annotations

import json

import pytest
import requests

from django_sso.exceptions import ConfigurationError, ProviderError
from django_sso.internal.http import check_url, request_json
from tests.fakeop import FakeNetworkAdapter

MB = 1024 * 1024


def _body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    skeleton = b'{"pad":""}'
    return skeleton[:-2] + b"x" * (size - len(skeleton)) + skeleton[-2:]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_refused_and_not_followed(op, network, status):
    op.scenario["respond"] = {"/token": (status, {"Location": "https://collector.example/steal"}, b"")}
    with pytest.raises(ProviderError) as caught:
        request_json("POST", op.url("/token"), data={"code": "c", "client_secret": "s"})
    assert caught.value.code == "sso.http.redirect_refused"
    # requests re-POSTs the body on 307/308: nothing may reach the Location host (RFC 9700 4.12).
    assert network.collector == []


def test_a_body_over_the_cap_is_refused(op, network):
    op.scenario["respond"] = {"/jwks": (200, {"Content-Type": "application/json"}, _body(MB + 1))}
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/jwks"))
    assert caught.value.code == "sso.http.too_large"


def test_a_declared_length_over_the_cap_is_refused_before_reading(op, network):
    headers = {"Content-Type": "application/json", "Content-Length": str(MB + 1)}
    op.scenario["respond"] = {"/jwks": (200, headers, b"{}")}
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/jwks"))
    assert caught.value.code == "sso.http.too_large"


def test_a_body_at_the_cap_is_read(op, network):
    op.scenario["respond"] = {"/jwks": (200, {"Content-Type": "application/json"}, _body(MB))}
    assert len(request_json("GET", op.url("/jwks"))["pad"]) == MB - len(b'{"pad":""}')


def test_the_cap_follows_the_setting(op, network, settings):
    settings.DJANGO_SSO_MAX_RESPONSE_BYTES = 100
    op.scenario["respond"] = {"/jwks": (200, {"Content-Type": "application/json"}, _body(101))}
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/jwks"))
    assert caught.value.code == "sso.http.too_large"


@pytest.fixture
def sent(network, monkeypatch):
    """Record the keyword arguments each request hands to the transport adapter."""
    calls = []
    original = network.send

    def send(request, **kwargs):
        calls.append(kwargs)
        return original(request, **kwargs)

    monkeypatch.setattr(network, "send", send)
    return calls


def test_timeouts_default_to_5s_connect_10s_read(op, sent):
    request_json("GET", op.url("/jwks"))
    assert [call["timeout"] for call in sent] == [(5, 10)]


def test_timeouts_follow_the_settings(op, sent, settings):
    settings.DJANGO_SSO_CONNECT_TIMEOUT = 2
    settings.DJANGO_SSO_READ_TIMEOUT = 3
    request_json("GET", op.url("/jwks"))
    assert [call["timeout"] for call in sent] == [(2, 3)]


def test_every_call_of_a_sign_in_carries_the_timeouts(source, sign_in, op, sent):
    result = sign_in()
    assert result.response.status_code == 303, result.response.content
    assert {r.path for r in op.requests} >= {"/honest/token", "/honest/jwks", "/honest/userinfo"}
    assert len(sent) >= 3
    assert {call["timeout"] for call in sent} == {(5, 10)}


def test_a_timeout_is_reported_as_such(op, network):
    network.failures[op.url("/jwks")] = requests.ReadTimeout()
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/jwks"))
    assert caught.value.code == "sso.http.timeout"


def test_a_connection_failure_is_reported(op, network):
    network.failures[op.url("/jwks")] = requests.ConnectionError("refused")
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/jwks"))
    assert caught.value.code == "sso.http.unreachable"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", json.dumps({"keys": []}).encode()),
        ("text/plain", b"{}"),
        ("application/json", b"<html>oops</html>"),
        ("application/json", b'{"truncated": '),
        ("application/json", b"[1, 2]"),
        ("application/json", b'"a string"'),
    ],
)
def test_only_a_json_object_is_accepted(op, network, content_type, body):
    op.scenario["respond"] = {"/jwks": (200, {"Content-Type": content_type}, body)}
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/jwks"))
    assert caught.value.code == "sso.http.not_json"
    assert body.decode() not in str(caught.value)


def test_json_with_a_charset_and_json_suffix_types_are_accepted(op, network):
    op.scenario["respond"] = {
        "/jwks": (200, {"Content-Type": "application/json; charset=utf-8"}, b'{"keys": []}'),
        "/userinfo": (200, {"Content-Type": "application/jwk-set+json"}, b'{"keys": []}'),
    }
    assert request_json("GET", op.url("/jwks")) == {"keys": []}
    assert request_json("GET", op.url("/userinfo")) == {"keys": []}


def test_an_unexpected_status_is_refused(op, network):
    with pytest.raises(ProviderError) as caught:
        request_json("GET", op.url("/nowhere"))
    assert caught.value.code == "sso.http.status"


def test_https_public_urls_pass():
    check_url("https://op.example/honest/token")


@pytest.mark.parametrize(
    "url",
    ["http://op.example/token", "ftp://op.example/token", "ws://op.example/token"],
)
def test_other_schemes_than_https_are_refused(settings, url):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    with pytest.raises(ConfigurationError) as caught:
        check_url(url)
    assert caught.value.code == "sso.config.not_https"


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/token",
        "https://192.168.1.1/token",
        "https://172.16.0.1/token",
        "https://127.0.0.1/token",
        "https://127.0.0.1:8443/token",
        "https://localhost/token",
        "https://LOCALHOST/token",
        "https://app.localhost/token",
        "https://[::1]/token",
        "https://[fe80::1]/token",
        "https://[::ffff:169.254.169.254]/token",
        "https://0.0.0.0/token",
    ],
)
def test_local_and_private_addresses_are_refused(settings, url):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    with pytest.raises(ConfigurationError) as caught:
        check_url(url)
    assert caught.value.code == "sso.config.private_address"


def test_an_allowed_local_host_may_use_http(settings):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    check_url("http://127.0.0.1:9000/token")
    check_url("https://127.0.0.1:9000/token")
    with pytest.raises(ConfigurationError):
        check_url("http://localhost:9000/token")


def test_an_allowed_local_host_still_needs_a_web_scheme(settings):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    with pytest.raises(ConfigurationError) as caught:
        check_url("file://127.0.0.1/etc/passwd")
    assert caught.value.code == "sso.config.bad_url"


def test_a_url_without_a_host_is_refused():
    with pytest.raises(ConfigurationError) as caught:
        check_url("https:///token")
    assert caught.value.code == "sso.config.bad_url"


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "127.0.0.1", "::1", "fd00::1"])
def test_a_public_name_resolving_to_a_private_address_is_refused_when_resolving(network, address):
    FakeNetworkAdapter.dns = {"sneaky.example": ["93.184.216.34", address]}
    check_url("https://sneaky.example/token")  # per-request checks do not resolve
    with pytest.raises(ConfigurationError) as caught:
        check_url("https://sneaky.example/token", resolve=True)
    assert caught.value.code == "sso.config.private_address"


def test_a_public_name_resolving_to_public_addresses_passes(network):
    FakeNetworkAdapter.dns = {"op.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]}
    check_url("https://op.example/token", resolve=True)


def test_an_unresolvable_name_is_refused_when_resolving(network, monkeypatch):
    def fail(self, host, port):
        raise OSError("no such host")

    monkeypatch.setattr(FakeNetworkAdapter, "resolve_host", fail)
    with pytest.raises(ConfigurationError) as caught:
        check_url("https://nowhere.example/token", resolve=True)
    assert caught.value.code == "sso.config.unresolvable"


def test_request_json_checks_the_url_before_any_request(network, settings):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    with pytest.raises(ConfigurationError):
        request_json("GET", "http://op.example/honest/jwks")
    with pytest.raises(ConfigurationError):
        request_json("GET", "https://169.254.169.254/latest/meta-data/")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1"])
def test_numeric_spellings_of_loopback_are_refused_once_resolved(settings, host):
    # The default adapter's resolver (getaddrinfo) reads these as 127.0.0.1 without any DNS query.
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    with pytest.raises(ConfigurationError) as caught:
        check_url(f"https://{host}/token", resolve=True)
    assert caught.value.code == "sso.config.private_address"
