"""OAuth 1.0a sign-in against a real provider on loopback (Authlib's server side), end to end.

The provider verifies every signature, nonce and timestamp itself; these tests drive the whole
three-legged flow through the site's views and look at what each side ends up with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.contrib.auth import get_user_model

from django_sso.forms import SourceForm
from django_sso.internal.flow import SESSION_KEY
from django_sso.models import Identity, Source
from tests.conftest import make_oauth1_source
from tests.support.oauth1_provider import CONSUMER_KEY, CONSUMER_SECRET, PROFILE_PATH

User = get_user_model()
CALLBACK = "http://testserver/sso/tw/callback/"


def calls(provider: Any, path: str) -> list[Any]:
    return [r for r in provider.requests if r.path == path]


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_three_legged_sign_in_creates_the_user(client, oauth1_provider, oauth1_source, oauth1_sign_in):
    result = oauth1_sign_in()
    assert result.response.status_code == 303, result.response.content
    identity = Identity.objects.get()
    assert identity.source == oauth1_source
    assert identity.subject == "1001"
    user = identity.user
    assert client.session["_auth_user_id"] == str(user.pk)
    assert user.email == "alice@example.com"
    assert (user.first_name, user.last_name) == ("Alice", "Example")
    assert identity.claims["screen_name"] == "alice"
    # OAuth 1 has no e-mail verification: the address is never counted as verified.
    assert identity.claims["email_verified"] is False

    paths = [(r.method, r.path, r.status) for r in oauth1_provider.requests]
    assert paths == [
        ("POST", "/oauth/request_token", 200),
        ("GET", "/oauth/authorize", 302),
        ("POST", "/oauth/access_token", 200),
        ("GET", PROFILE_PATH, 200),
    ]
    request_token, _, access_token, profile = oauth1_provider.requests
    assert request_token.oauth["oauth_callback"] == CALLBACK
    assert request_token.oauth["oauth_consumer_key"] == CONSUMER_KEY
    assert access_token.oauth["oauth_token"] == query_of(result.authorize_url)["oauth_token"]
    assert access_token.oauth["oauth_verifier"] == query_of(result.callback_url)["oauth_verifier"]
    assert profile.oauth["oauth_token"] not in {access_token.oauth["oauth_token"], ""}


def test_a_returning_user_gets_the_same_account(client, oauth1_provider, oauth1_source, oauth1_sign_in):
    first = oauth1_sign_in()
    assert first.response.status_code == 303
    client.logout()
    second = oauth1_sign_in()
    assert second.response.status_code == 303
    assert Identity.objects.count() == 1
    assert User.objects.count() == 1


def test_the_authorization_url_carries_only_the_temporary_token(client, oauth1_provider, oauth1_source):
    oauth1_source.extra_authorize_params = {"force_login": "true", "oauth_callback": "https://evil.example/"}
    oauth1_source.save()
    location = client.post("/sso/tw/login/")["Location"]
    assert location.startswith(oauth1_provider.url("/oauth/authorize?"))
    params = query_of(location)
    assert set(params) == {"oauth_token", "force_login"}
    # The flow is stored server-side under the temporary token, with its secret.
    flows = client.session[SESSION_KEY]
    assert list(flows) == [params["oauth_token"]]
    secret = flows[params["oauth_token"]]["extra"]["oauth_token_secret"]
    assert secret and secret not in location


def test_next_is_kept_through_the_provider(client, oauth1_provider, oauth1_source):
    start = client.post("/sso/tw/login/", {"next": "/whoami/"})
    callback = oauth1_provider.authorize(start["Location"])
    parts = urlsplit(callback)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 303
    assert response["Location"] == "/whoami/"


def test_refusing_at_the_provider_shows_the_cancelled_page(
    client, oauth1_provider, oauth1_source, oauth1_sign_in
):
    result = oauth1_sign_in(login=None)
    assert result.response.status_code == 400
    assert result.response.context["code"] == "sso.authorize.access_denied"
    assert "_auth_user_id" not in client.session
    assert not calls(oauth1_provider, "/oauth/access_token")


def test_a_wrong_consumer_secret_is_a_provider_error(client, oauth1_provider, oauth1_source):
    oauth1_source.client_secret = "not-the-secret"
    oauth1_source.save()
    response = client.post("/sso/tw/login/")
    assert response.status_code == 502
    assert response.context["code"] == "sso.oauth1.request_token.status"
    assert SESSION_KEY not in client.session or not client.session[SESSION_KEY]


def test_a_broken_profile_is_a_provider_error(client, oauth1_provider, oauth1_sign_in, db):
    make_oauth1_source(oauth1_provider, userinfo_url=oauth1_provider.url("/nowhere"))
    result = oauth1_sign_in()
    assert result.response.status_code == 502
    assert result.response.context["code"] == "sso.profile.status"
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("subject_field", ["screen_name_list", "missing"])
def test_a_subject_that_is_not_a_scalar_is_refused(
    client, oauth1_provider, oauth1_sign_in, db, subject_field
):
    oauth1_provider.users["alice"]["screen_name_list"] = ["alice"]
    try:
        make_oauth1_source(oauth1_provider, profile_subject_field=subject_field)
        result = oauth1_sign_in()
    finally:
        del oauth1_provider.users["alice"]["screen_name_list"]
    assert result.response.status_code == 400
    assert result.response.context["code"] == "sso.profile.bad_sub"
    assert Identity.objects.count() == 0


def oauth1_form_data(provider: Any, **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Tweeter",
        "slug": "tw",
        "protocol": "oauth1",
        "enabled": True,
        "display_order": 0,
        "client_id": CONSUMER_KEY,
        "client_secret": CONSUMER_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        "request_token_url": provider.url("/oauth/request_token"),
        "authorization_url": provider.url("/oauth/authorize"),
        "token_url": provider.url("/oauth/access_token"),
        "userinfo_url": provider.url(PROFILE_PATH),
        "profile_subject_field": "user_id",
        "profile_email_field": "email",
        "profile_name_field": "name",
        "extra_authorize_params": "{}",
        "preset_options": "{}",
        "signing_algorithms": "RS256",
        "allow_signup": True,
    }
    data.update(overrides)
    return data


def test_the_form_saves_an_oauth1_source_that_signs_in(db, oauth1_provider, oauth1_sign_in):
    form = SourceForm(data=oauth1_form_data(oauth1_provider))
    assert form.is_valid(), form.errors
    source = form.save()
    assert source.protocol == "oauth1"
    assert oauth1_sign_in().response.status_code == 303


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_secret", ""),
        ("request_token_url", ""),
        ("authorization_url", ""),
        ("token_url", ""),
        ("userinfo_url", ""),
        ("keep_refresh_token", True),
    ],
)
def test_the_form_requires_what_oauth1_needs(db, oauth1_provider, field, value):
    form = SourceForm(data=oauth1_form_data(oauth1_provider, **{field: value}))
    assert not form.is_valid()
    assert field in form.errors
    assert not Source.objects.exists()
