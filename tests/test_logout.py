"""Sign-out at the provider (RP-Initiated Logout 1.0) and the way back; LGO-01/02 are in test_cases_logout."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.test import Client

from django_sso.app_settings import app_settings
from django_sso.logout import LOGOUT_STATE_KEY
from django_sso.models import SSOSession
from tests.conftest import make_source
from tests.fakeop import FakeOP


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def signed_in(browser: Client) -> bool:
    return browser.get("/whoami/").json()["authenticated"]


@pytest.fixture
def logging_out(db: Any, op: FakeOP) -> Any:
    return make_source(op, "honest", logout_at_provider=True)


def test_without_the_option_only_the_local_session_ends(client, op, source, sign_in):
    assert source.end_session_url
    sign_in()
    response = client.post("/sso/logout/", {"next": "/whoami/"})
    assert response.status_code == 303
    assert response["Location"] == "/whoami/"
    assert not signed_in(client)


def test_the_default_post_logout_redirect_uri_is_the_signed_out_page(client, op, logging_out, sign_in):
    sign_in()
    params = query(client.post("/sso/logout/")["Location"])
    assert params["post_logout_redirect_uri"] == "http://testserver/sso/logged-out/"


def test_the_provider_sends_the_browser_back_to_next(client, op, logging_out, sign_in):
    sign_in()
    response = client.post("/sso/logout/", {"next": "/whoami/"})
    back = op.end_session(response["Location"])
    assert back.startswith("http://testserver/sso/logged-out/?state=")
    returned = client.get(urlsplit(back).path + "?" + urlsplit(back).query)
    assert returned.status_code == 303
    assert returned["Location"] == "/whoami/"
    # The state is single-use: the same link again only shows the neutral page.
    again = client.get(urlsplit(back).path + "?" + urlsplit(back).query)
    assert again.status_code == 200
    assert not signed_in(client)


def test_an_expired_state_shows_the_neutral_page(client, op, logging_out, sign_in):
    sign_in()
    back = op.end_session(client.post("/sso/logout/", {"next": "/whoami/"})["Location"])
    with time_machine.travel(time.time() + app_settings.FLOW_TIMEOUT + 1, tick=False):
        page = client.get("/sso/logged-out/?" + urlsplit(back).query)
    assert page.status_code == 200


def test_the_signed_out_page_signs_nobody_in_or_out(client, op, logging_out, sign_in):
    sign_in()
    page = client.get("/sso/logged-out/?state=whatever")
    assert page.status_code == 200
    assert signed_in(client)
    assert LOGOUT_STATE_KEY not in client.session


def test_a_session_without_an_id_token_still_names_the_client(client, op, logging_out, sign_in):
    sign_in()
    SSOSession.objects.update(id_token="")
    params = query(client.post("/sso/logout/")["Location"])
    assert "id_token_hint" not in params
    assert params["client_id"] == op.client_id


def test_an_end_session_url_with_a_query_keeps_it(db, client, op, sign_in):
    make_source(op, "honest", logout_at_provider=True, end_session_url=op.url("/end_session?tenant=t1"))
    sign_in()
    location = client.post("/sso/logout/")["Location"]
    assert location.startswith(op.url("/end_session?tenant=t1&"))
    assert set(query(location)) == {
        "tenant",
        "id_token_hint",
        "client_id",
        "post_logout_redirect_uri",
        "state",
    }


def test_a_plain_oauth2_logout_url_is_used_as_configured(db, client, op, sign_in):
    logout_url = "https://op.example/honest/v2/logout?returnTo=https%3A%2F%2Fapp.example.com%2F"
    make_source(op, "honest", protocol="oauth2", logout_at_provider=True, end_session_url=logout_url)
    sign_in()
    response = client.post("/sso/logout/")
    assert response.status_code == 303
    assert response["Location"] == logout_url
    assert not signed_in(client)


def test_sessions_signed_in_otherwise_sign_out_locally(client, logging_out, django_user_model):
    django_user_model.objects.create_user("dora", password="pw")
    client.login(username="dora", password="pw")
    response = client.post("/sso/logout/", {"next": "/whoami/"})
    assert response["Location"] == "/whoami/"
    assert not signed_in(client)


def test_the_command_sets_the_lifecycle_options(db, op):
    from django.core.management import call_command

    source = make_source(op, "honest")
    call_command(
        "sso_source",
        "update",
        "honest",
        "--keep-tokens",
        "--revalidate-session",
        "--logout-at-provider",
        "--post-logout-redirect-uri",
        "https://app.example.com/bye/",
    )
    source.refresh_from_db()
    assert source.keep_refresh_token and source.revalidate_session and source.logout_at_provider
    assert source.post_logout_redirect_uri == "https://app.example.com/bye/"
