"""The authorization request: the operator's parameters, the per-request ones, and what is never
passed on (AZQ-01 has the attacks; this is what a sign-in link may legitimately ask for)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from django_sso.models import Source
from tests.rejections import begin, query_of

PER_REQUEST = {
    "login_hint": "alice@example.com",
    "prompt": "select_account consent",
    "acr_values": "urn:example:loa:2 urn:example:loa:1",
    "max_age": "600",
    "ui_locales": "fr-CA fr",
    "resource": "https://api.example.com/orders",
    "audience": "https://api.example.com",
    "organization": "org_abc123",
    "org_id": "00o1abc",
    "domain_hint": "contoso.com",
}


def test_per_request_parameters_are_passed_on(client, op, source):
    params = query_of(begin(client, **PER_REQUEST))
    for name, value in PER_REQUEST.items():
        assert params[name] == value
    assert params["response_type"] == "code"


def test_the_claims_request_is_a_json_object_sent_compactly(client, op, source):
    claims = {
        "id_token": {"acr": {"essential": True, "values": ["urn:example:loa:2"]}},
        "userinfo": {"email": None},
    }
    params = query_of(begin(client, claims=json.dumps(claims, indent=2)))
    assert json.loads(params["claims"]) == claims
    assert " " not in params["claims"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("claims", "not json"),
        ("claims", "[1, 2]"),
        ("claims", json.dumps({"access_token": {}})),
        ("claims", json.dumps({"id_token": {"x": "y" * 3000}})),
        ("resource", "api.example.com"),
        ("resource", "https://api.example.com/#frag"),
        ("prompt", "login admin"),
        ("max_age", "-1"),
        ("max_age", "1e3"),
    ],
)
def test_malformed_values_are_dropped(client, op, source, name, value):
    assert name not in query_of(begin(client, **{name: value}))


def test_long_values_are_cut(client, op, source):
    assert len(query_of(begin(client, login_hint="a" * 1000))["login_hint"]) == 256


def test_operator_parameters_are_sent_and_per_request_ones_take_precedence(client, op, source):
    source.extra_authorize_params = {"prompt": "select_account", "audience": "https://api.example.com"}
    source.save()
    params = query_of(begin(client))
    assert (params["prompt"], params["audience"]) == ("select_account", "https://api.example.com")
    params = query_of(begin(client, prompt="login"))
    assert params["prompt"] == "login"
    # Nothing a request asks for changes the stored configuration.
    assert Source.objects.get().extra_authorize_params["prompt"] == "select_account"
    assert query_of(begin(Client()))["prompt"] == "select_account"


@pytest.mark.parametrize(
    "name",
    [
        "response_type",
        "response_mode",
        "redirect_uri",
        "client_id",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "hd",
    ],
)
def test_the_protocol_parameters_are_never_taken_from_the_request(client, op, source, name):
    params = query_of(begin(client, **{name: "attacker"}))
    assert params.get(name) != "attacker"
    assert params["response_type"] == "code"


@pytest.mark.parametrize(
    "name", ["code_verifier", "client_secret", "grant_type", "response_type", "request_uri"]
)
def test_reserved_names_are_dropped_from_the_operator_parameters_too(client, op, source, name):
    source.extra_authorize_params = {name: "configured"}
    source.save()
    assert query_of(begin(client)).get(name) != "configured"


def test_the_hosted_domain_overrides_an_operator_hd(client, op, source):
    source.extra_authorize_params = {"hd": "old.example.com"}
    source.hosted_domain = "example.com"
    source.save()
    assert query_of(begin(client))["hd"] == "example.com"
