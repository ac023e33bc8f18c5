"""Against the real provider (npm oidc-provider on loopback): a plain OAuth 2 client, the
per-request authorization parameters, and client credentials with the cache in front."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
import requests
from django.contrib.auth import get_user_model

from django_sso.adapter import DefaultSSOAdapter
from django_sso.forms import SourceForm
from django_sso.models import Identity, Source
from tests.conftest import E2E_CLIENT_ID, E2E_CLIENT_SECRET, make_discovered_source

pytestmark = pytest.mark.e2e

User = get_user_model()
PLAIN_CLIENT_ID = "django-sso-plain-oauth2"
PLAIN_SECRET = "django-sso-plain-oauth2-secret-0123456789"


class CountingAdapter(DefaultSSOAdapter):
    """Records every outbound request's method and URL (the real provider has no recorder)."""

    sent: list[tuple[str, str]] = []

    def configure_http_session(self, session: requests.Session) -> None:
        def record(response: requests.Response, **kwargs: Any) -> None:
            CountingAdapter.sent.append((response.request.method or "", response.request.url or ""))

        session.hooks["response"].insert(0, record)


@pytest.fixture
def counting(settings: Any) -> list[tuple[str, str]]:
    settings.DJANGO_SSO_ADAPTER = "tests.test_providers_e2e.CountingAdapter"
    CountingAdapter.sent = []
    return CountingAdapter.sent


@pytest.fixture
def plain_client(oidc_provider: Any) -> None:
    oidc_provider.add_client(
        {
            "client_id": PLAIN_CLIENT_ID,
            "client_secret": PLAIN_SECRET,
            "redirect_uris": ["http://testserver/sso/plain/callback/"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
        }
    )


def plain_source(oidc_provider: Any, **overrides: Any) -> Source:
    """A plain OAuth 2 source, configured by hand as an operator would for a non-OIDC provider.

    It asks for ``openid`` only because this provider's profile URL (UserInfo) wants it; the ID
    token that comes back is never looked at.
    """
    metadata = oidc_provider.discovery()
    data = {
        "name": "Plain",
        "slug": "plain",
        "protocol": "oauth2",
        "enabled": True,
        "display_order": 0,
        "client_id": PLAIN_CLIENT_ID,
        "client_secret": PLAIN_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        # RFC 9207 is OAuth 2.0: this server sends iss, so its issuer identifier is configured.
        "issuer": metadata["issuer"],
        "authorization_url": metadata["authorization_endpoint"],
        "token_url": metadata["token_endpoint"],
        "userinfo_url": metadata["userinfo_endpoint"],
        "scopes": "openid email profile",
        "use_pkce": True,
        "profile_subject_field": "sub",
        "profile_email_field": "email",
        "profile_name_field": "name",
        "profile_email_verified_field": "email_verified",
        "extra_authorize_params": "{}",
        "preset_options": "{}",
        "signing_algorithms": "RS256",
        "allow_signup": True,
    }
    data.update(overrides)
    form = SourceForm(data=data)
    assert form.is_valid(), form.errors
    source = form.save()
    source.iss_parameter_supported = True
    source.save()
    return source


# ---- plain OAuth 2 --------------------------------------------------------------------------


def test_plain_oauth2_sign_in_against_the_real_provider(
    db, client, oidc_provider, plain_client, real_sign_in, counting
):
    source = plain_source(oidc_provider)
    result = real_sign_in("plain")
    assert result.response.status_code == 303, result.response.content
    params = dict(parse_qsl(urlsplit(result.authorize_url).query))
    assert params["code_challenge_method"] == "S256"
    assert "nonce" not in params
    identity = Identity.objects.get(source=source)
    assert identity.subject == "alice-sub"
    assert identity.user.email == "alice@example.com"
    assert identity.claims["email_verified"] is True
    # Token, then the profile URL; no JWKS fetch: nothing was validated as an ID token.
    metadata = oidc_provider.discovery()
    assert [url for _, url in counting] == [metadata["token_endpoint"], metadata["userinfo_endpoint"]]


def test_plain_oauth2_e_mail_verification_comes_from_the_configured_field(
    db, client, oidc_provider, plain_client, real_sign_in
):
    plain_source(oidc_provider, profile_email_verified_field="")
    assert real_sign_in("plain", login="alice").response.status_code == 303
    assert Identity.objects.get().claims["email_verified"] is False


def test_plain_oauth2_subject_from_another_field(db, client, oidc_provider, plain_client, real_sign_in):
    plain_source(oidc_provider, profile_subject_field="preferred_username")
    assert real_sign_in("plain", login="bob").response.status_code == 303
    assert Identity.objects.get().subject == "bob"


# ---- per-request authorization parameters ---------------------------------------------------


def test_per_request_parameters_reach_the_real_provider(db, client, oidc_provider, real_sign_in):
    make_discovered_source(oidc_provider)
    claims = json.dumps({"id_token": {"email": {"essential": True}}})
    result = real_sign_in(
        params={
            "login_hint": "alice",
            "prompt": "login",
            "acr_values": "urn:example:loa:1",
            "claims": claims,
            "resource": "https://api.example.test",
            "max_age": "300",
            "scope": "openid admin",
        }
    )
    assert result.response.status_code == 303, result.response.content
    params = dict(parse_qsl(urlsplit(result.authorize_url).query))
    assert params["login_hint"] == "alice"
    assert params["prompt"] == "login"
    assert params["acr_values"] == "urn:example:loa:1"
    assert json.loads(params["claims"]) == {"id_token": {"email": {"essential": True}}}
    assert params["resource"] == "https://api.example.test"
    assert params["max_age"] == "300"
    assert params["scope"] == "openid email profile"
    assert params["response_type"] == "code"


# ---- client credentials ---------------------------------------------------------------------


def test_client_credentials_from_the_real_provider_with_the_cache(db, oidc_provider, counting):
    source = make_discovered_source(oidc_provider)
    counting.clear()
    token = source.client_credentials_token(scope="app:manage_orders")
    assert token.count(".") == 2
    # The provider issued a JWT access token for its API, for this client: check it properly.
    keys = jwt.PyJWKClient(oidc_provider.url("/jwks"))
    claims = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        audience="https://api.example.test",
        issuer=oidc_provider.issuer,
    )
    assert claims["client_id"] == E2E_CLIENT_ID
    assert claims["scope"] == "app:manage_orders"
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    token_endpoint = source.token_url
    assert counting == [("POST", token_endpoint)]

    # The second call is served from the cache: no second token request.
    assert source.client_credentials_token(scope="app:manage_orders") == token
    assert Source.objects.get(pk=source.pk).client_credentials_token(scope="app:manage_orders") == token
    assert counting == [("POST", token_endpoint)]

    # Another scope is another token, fetched once.
    other = source.client_credentials_token(scope="app:manage_users")
    assert other != token
    assert counting == [("POST", token_endpoint)] * 2


def test_client_credentials_refused_by_the_real_provider(db, oidc_provider, counting):
    from django_sso.exceptions import ProviderError

    source = make_discovered_source(oidc_provider, client_secret="not-" + E2E_CLIENT_SECRET)
    counting.clear()
    with pytest.raises(ProviderError) as caught:
        source.client_credentials_token(scope="app:manage_orders")
    assert caught.value.code in {"sso.token.status", "sso.token.error"}
    with pytest.raises(ProviderError):
        source.client_credentials_token(scope="app:manage_orders")
    # Nothing was cached from the refusal: each call asks again.
    assert counting == [("POST", source.token_url)] * 2
