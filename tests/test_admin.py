"""The Source admin: discovery on add, no silent re-fetch, the re-fetch action, secrets kept out of HTML."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.contrib.messages import get_messages

from django_sso.models import Source
from tests.conftest import make_source
from tests.fakeop import CLIENT_SECRET, FakeOP
from tests.test_discovery import WELL_KNOWN, discovered, edit_data, form_data, snapshot, well_known_fetches

ADD = "/admin/django_sso/source/add/"
CHANGELIST = "/admin/django_sso/source/"


def change_url(source: Source) -> str:
    return f"/admin/django_sso/source/{source.pk}/change/"


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_errors(response: Any) -> dict[str, list[str]]:
    return response.context["adminform"].form.errors


def test_the_add_view_fills_the_source_from_discovery(admin_client, op):
    response = admin_client.post(ADD, form_data(well_known_url=op.url(WELL_KNOWN)))
    assert response.status_code == 302, form_errors(response)
    source = Source.objects.get()
    assert source.issuer == op.issuer
    assert source.authorization_url == op.url("/authorize")
    assert source.token_url == op.url("/token")
    assert source.userinfo_url == op.url("/userinfo")
    assert source.jwks_url == op.url("/jwks")
    assert source.end_session_url == op.url("/end_session")
    assert source.iss_parameter_supported is True
    assert source.provider_metadata == op.discovery()
    assert source.last_discovery_at is not None
    assert source.client_secret == CLIENT_SECRET
    assert well_known_fetches(op) == 1


def test_saving_again_with_the_same_url_does_not_fetch(admin_client, op):
    source = discovered(op)
    stamp = source.last_discovery_at
    response = admin_client.post(change_url(source), edit_data(source, name="Renamed"))
    assert response.status_code == 302, form_errors(response)
    source.refresh_from_db()
    assert source.name == "Renamed"
    assert source.last_discovery_at == stamp
    assert well_known_fetches(op) == 1


def test_the_refetch_action_fetches_on_demand(admin_client, op):
    source = discovered(op)
    stamp = source.last_discovery_at
    op.scenario["discovery"] = {"userinfo_endpoint": op.url("/userinfo/v2")}
    response = admin_client.post(
        CHANGELIST, {"action": "refetch_discovery", "_selected_action": [source.pk]}, follow=True
    )
    assert any("discovery refreshed" in m for m in messages_of(response))
    source.refresh_from_db()
    assert source.userinfo_url == op.url("/userinfo/v2")
    assert source.last_discovery_at > stamp
    assert well_known_fetches(op) == 2


def test_the_refetch_action_warns_about_a_source_without_a_well_known_url(admin_client, op):
    source = make_source(op, "manual")
    response = admin_client.post(
        CHANGELIST, {"action": "refetch_discovery", "_selected_action": [source.pk]}, follow=True
    )
    assert any("has no well-known URL" in m for m in messages_of(response))
    assert op.requests == []


FAILURES = {
    "issuer mismatch": (
        lambda op, net: op.scenario.update(discovery={"issuer": op.issuer + "/"}),
        "Issuer mismatch",
    ),
    "404": (lambda op, net: op.scenario.update(respond={WELL_KNOWN: (404, {}, b"")}), "error status"),
    "timeout": (lambda op, net: net.failures.update({op.url(WELL_KNOWN): requests.ReadTimeout()}), "in time"),
    "not JSON": (
        lambda op, net: op.scenario.update(
            respond={WELL_KNOWN: (200, {"Content-Type": "text/html"}, b"<h1>")}
        ),
        "JSON object",
    ),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_discovery_in_the_add_view_saves_nothing(admin_client, op, network, failure):
    arrange, message = FAILURES[failure]
    arrange(op, network)
    response = admin_client.post(ADD, form_data(well_known_url=op.url(WELL_KNOWN)))
    assert response.status_code == 200
    assert message in " ".join(form_errors(response)["well_known_url"])
    assert Source.objects.count() == 0


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_discovery_in_the_change_view_changes_nothing(admin_client, op, network, failure):
    source = discovered(op)
    before = snapshot(source)
    moved = FakeOP("https://op.example/moved")
    network.ops.append(moved)
    arrange, message = FAILURES[failure]
    arrange(moved, network)
    data = edit_data(source, name="Renamed", well_known_url=moved.url(WELL_KNOWN))
    response = admin_client.post(change_url(source), data)
    assert response.status_code == 200
    assert message in " ".join(form_errors(response)["well_known_url"])
    assert snapshot(source) == before


def test_the_secret_never_appears_in_admin_html(admin_client, op):
    source = discovered(op)
    pages = [CHANGELIST, change_url(source), f"/admin/django_sso/source/{source.pk}/history/"]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert CLIENT_SECRET not in response.content.decode(), page
    # A form re-rendered with an error does not echo a newly typed secret either.
    response = admin_client.post(
        change_url(source), edit_data(source, client_secret="typed-new-secret", signing_algorithms="none")
    )
    assert response.status_code == 200
    assert "typed-new-secret" not in response.content.decode()
    assert CLIENT_SECRET not in response.content.decode()


def test_a_blank_secret_on_edit_keeps_the_stored_one(admin_client, op):
    source = discovered(op)
    response = admin_client.post(change_url(source), edit_data(source, client_secret=""))
    assert response.status_code == 302, form_errors(response)
    source.refresh_from_db()
    assert source.client_secret == CLIENT_SECRET


def test_a_typed_secret_on_edit_replaces_the_stored_one(admin_client, op):
    source = discovered(op)
    response = admin_client.post(change_url(source), edit_data(source, client_secret="rotated-secret"))
    assert response.status_code == 302, form_errors(response)
    source.refresh_from_db()
    assert source.client_secret == "rotated-secret"


def test_identities_cannot_be_added_by_hand(admin_client):
    assert admin_client.get("/admin/django_sso/identity/add/").status_code == 403
