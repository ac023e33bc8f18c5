"""Discovery on save through SourceForm: what it fills, when it fetches, and how it fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.forms.models import model_to_dict

from django_sso.forms import SourceForm
from django_sso.internal import discovery
from django_sso.models import Source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET, FakeOP

WELL_KNOWN = "/.well-known/openid-configuration"


#: The admin's group mapping inline, empty (SourceForm ignores these keys).
INLINE_DATA = {
    "group_mappings-TOTAL_FORMS": "0",
    "group_mappings-INITIAL_FORMS": "0",
    "group_mappings-MIN_NUM_FORMS": "0",
    "group_mappings-MAX_NUM_FORMS": "1000",
}


def form_data(**overrides: Any) -> dict[str, Any]:
    """The POST data of a new OIDC source that relies on discovery for its endpoints."""
    data = {
        **INLINE_DATA,
        "name": "Honest",
        "slug": "honest",
        "protocol": "oidc",
        "enabled": True,
        "display_order": 0,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        "scopes": "openid email profile",
        "use_pkce": True,
        "extra_authorize_params": "{}",
        "signing_algorithms": "RS256",
        "fetch_userinfo": True,
        "allow_signup": True,
    }
    data.update(overrides)
    return data


def edit_data(source: Source, **overrides: Any) -> dict[str, Any]:
    """The POST data of the change form for ``source``, as a browser would send it back."""
    data = model_to_dict(source, fields=SourceForm._meta.fields)
    data["client_secret"] = ""
    data["extra_authorize_params"] = json.dumps(data["extra_authorize_params"])
    data["jwks"] = json.dumps(data["jwks"]) if data["jwks"] else ""
    data = {k: v for k, v in data.items() if v is not None and v is not False}
    data.update(INLINE_DATA)
    data.update(overrides)
    return data


def discovered(op: FakeOP, **overrides: Any) -> Source:
    """Save a source through the form from ``op``'s well-known URL and return it."""
    form = SourceForm(data=form_data(well_known_url=op.url(WELL_KNOWN), **overrides))
    assert form.is_valid(), form.errors
    return form.save()


def well_known_fetches(op: FakeOP) -> int:
    return sum(1 for r in op.requests if r.path.endswith(WELL_KNOWN))


def snapshot(source: Source) -> dict[str, Any]:
    fresh = Source.objects.get(pk=source.pk)
    return {f.name: getattr(fresh, f.name) for f in Source._meta.fields}


def test_discovery_fills_every_endpoint_and_the_capabilities(db, op):
    source = discovered(op)
    source.refresh_from_db()
    assert source.issuer == op.issuer
    assert source.authorization_url == op.url("/authorize")
    assert source.token_url == op.url("/token")
    assert source.userinfo_url == op.url("/userinfo")
    assert source.jwks_url == op.url("/jwks")
    assert source.end_session_url == op.url("/end_session")
    assert source.iss_parameter_supported is True
    assert source.provider_metadata == op.discovery()
    assert source.last_discovery_at is not None
    assert well_known_fetches(op) == 1


def test_discovery_overrides_endpoints_typed_into_the_form(db, op):
    source = discovered(op, token_url="https://elsewhere.example/token", issuer="https://elsewhere.example")
    assert source.token_url == op.url("/token")
    assert source.issuer == op.issuer


def test_iss_parameter_supported_is_false_unless_advertised_as_true(db, op):
    op.scenario["discovery"] = {"authorization_response_iss_parameter_supported": "true"}
    assert discovered(op).iss_parameter_supported is False


def test_an_absent_end_session_endpoint_leaves_the_field_empty(db, op):
    op.scenario["discovery"] = {"end_session_endpoint": None}
    source = discovered(op)
    assert source.end_session_url == ""


def test_a_later_save_with_the_same_url_does_not_fetch_again(db, op):
    source = discovered(op)
    stamp = source.last_discovery_at
    form = SourceForm(data=edit_data(source, name="Renamed"), instance=source)
    assert form.is_valid(), form.errors
    form.save()
    source.refresh_from_db()
    assert source.name == "Renamed"
    assert source.last_discovery_at == stamp
    assert well_known_fetches(op) == 1


def test_a_changed_url_fetches_again(db, op, network):
    source = discovered(op)
    other = FakeOP("https://op.example/moved", key_index=0)
    network.ops.append(other)
    form = SourceForm(data=edit_data(source, well_known_url=other.url(WELL_KNOWN)), instance=source)
    assert form.is_valid(), form.errors
    form.save()
    source.refresh_from_db()
    assert source.issuer == other.issuer
    assert source.token_url == other.url("/token")
    assert well_known_fetches(other) == 1


def test_refetch_on_demand_fetches_with_the_same_url(db, op):
    source = discovered(op)
    op.scenario["discovery"] = {"userinfo_endpoint": op.url("/userinfo/v2")}
    form = SourceForm(data=edit_data(source), instance=source)
    form.refetch = True
    assert form.is_valid(), form.errors
    form.save()
    source.refresh_from_db()
    assert source.userinfo_url == op.url("/userinfo/v2")
    assert well_known_fetches(op) == 2


def test_refresh_applies_new_same_origin_metadata(db, op):
    source = discovered(op)
    op.scenario["discovery"] = {"jwks_uri": op.url("/keys/2")}
    discovery.refresh(source)
    source.save()
    source.refresh_from_db()
    assert source.jwks_url == op.url("/keys/2")
    assert source.provider_metadata["jwks_uri"] == op.url("/keys/2")
    assert well_known_fetches(op) == 2


FAILURES = {
    "issuer mismatch": (
        lambda op, network: op.scenario.update(discovery={"issuer": "https://op.example/other"}),
        "Issuer mismatch",
    ),
    "404": (
        lambda op, network: op.scenario.update(respond={WELL_KNOWN: (404, {}, b"")}),
        "error status",
    ),
    "timeout": (
        lambda op, network: network.failures.update({op.url(WELL_KNOWN): requests.ReadTimeout()}),
        "did not answer in time",
    ),
    "invalid JSON": (
        lambda op, network: op.scenario.update(
            respond={WELL_KNOWN: (200, {"Content-Type": "application/json"}, b'{"issuer": ')}
        ),
        "JSON object",
    ),
    "non-object JSON": (
        lambda op, network: op.scenario.update(
            respond={WELL_KNOWN: (200, {"Content-Type": "application/json"}, b'["issuer"]')}
        ),
        "JSON object",
    ),
    "oversize": (
        lambda op, network: op.scenario.update(
            respond={
                WELL_KNOWN: (
                    200,
                    {"Content-Type": "application/json"},
                    b'{"pad": "' + b"x" * (1024 * 1024) + b'"}',
                )
            }
        ),
        "too large",
    ),
    "missing jwks_uri": (
        lambda op, network: op.scenario.update(discovery={"jwks_uri": None}),
        "lacks a required endpoint",
    ),
    "http endpoint": (
        lambda op, network: op.scenario.update(
            discovery={"token_endpoint": "http://op.example/honest/token"}
        ),
        "must use https",
    ),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_discovery_is_a_form_error_and_saves_nothing(db, op, network, failure):
    arrange, message = FAILURES[failure]
    arrange(op, network)
    form = SourceForm(data=form_data(well_known_url=op.url(WELL_KNOWN)))
    assert not form.is_valid()
    errors = form.errors["well_known_url"]
    assert len(errors) == 1
    assert message.lower() in errors[0].lower()
    with pytest.raises(ValueError):
        form.save()
    assert Source.objects.count() == 0


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_discovery_leaves_an_existing_source_unchanged(db, op, network, failure):
    source = discovered(op)
    before = snapshot(source)
    other = FakeOP("https://op.example/next", key_index=0)
    network.ops.append(other)
    arrange, message = FAILURES[failure]
    arrange(other, network)
    form = SourceForm(data=edit_data(source, well_known_url=other.url(WELL_KNOWN)), instance=source)
    assert not form.is_valid()
    assert message.lower() in form.errors["well_known_url"][0].lower()
    assert snapshot(source) == before
    assert Source.objects.count() == 1


def test_a_well_known_url_with_another_suffix_is_refused(db, op):
    form = SourceForm(data=form_data(well_known_url=op.url("/.well-known/oauth-authorization-server")))
    assert not form.is_valid()
    assert "/.well-known/openid-configuration" in form.errors["well_known_url"][0]
    assert well_known_fetches(op) == 0


def test_a_well_known_url_at_a_private_address_is_refused_before_any_request(db, network, settings):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    form = SourceForm(data=form_data(well_known_url="https://169.254.169.254" + WELL_KNOWN))
    assert not form.is_valid()
    assert "private or loopback" in form.errors["well_known_url"][0]
    assert Source.objects.count() == 0


def test_apply_metadata_picks_a_safe_advertised_algorithm_for_a_source_naming_none(db, op):
    op.scenario["discovery"] = {"id_token_signing_alg_values_supported": ["none", "HS256", "ES256"]}
    source = Source(slug="bare", signing_algorithms="")
    discovery.apply_metadata(source, discovery.fetch_metadata(op.url(WELL_KNOWN)))
    assert source.signing_algorithms == "ES256"
