"""Sign-ins against the real provider (npm oidc-provider on loopback), outcome by outcome.

Nothing is faked: the browser is Django's test client plus a :class:`requests.Session` walking
the provider's own pages, and every assertion is about what the site ends up with (users,
identities, the session, the answer's status and Location).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from django_sso import signals
from django_sso.adapter import DefaultSSOAdapter
from django_sso.internal import flow as flows
from django_sso.models import Identity
from tests.conftest import (
    E2E_ACCOUNTS,
    E2E_CLIENT_ID,
    E2E_CLIENT_SECRET,
    E2E_POST_CLIENT_ID,
    make_discovered_source,
)
from tests.support.op_server import sign_in_with_requests

pytestmark = pytest.mark.e2e

User = get_user_model()
ABORT_FORM = re.compile(r'<form method="post" action="([^"]+)" id="abort-form"')


# ---- helpers ---------------------------------------------------------------------------------


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def signed_in_user_id(browser: Client) -> str | None:
    return browser.session.get("_auth_user_id")


def session_exists(session_key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key)


def assert_refused(result: Any, browser: Client, status: int, code: str) -> None:
    """The error page with ``code``, no one signed in, the flow used up."""
    response = result.response
    assert response.status_code == status, response.content
    assert response.templates[0].name == "django_sso/error.html"
    assert response.context["code"] == code
    assert "no-store" in response["Cache-Control"]
    assert signed_in_user_id(browser) is None
    assert browser.get("/whoami/").json()["authenticated"] is False
    assert query_of(result.callback_url)["state"] not in browser.session.get(flows.SESSION_KEY, {})


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def cancel_at_provider(session: requests.Session, authorize_url: str, slug: str) -> str:
    """Walk to the provider's login form, press Cancel, return the redirect back to the site."""
    prefix = f"http://testserver/sso/{slug}/callback/"
    method, url = "GET", authorize_url
    for _ in range(8):
        resp = session.request(method, url, allow_redirects=False, timeout=10)
        if resp.is_redirect:
            url, method = urljoin(resp.url, resp.headers["Location"]), "GET"
            if url.startswith(prefix):
                return url
            continue
        match = ABORT_FORM.search(resp.text)
        assert match is not None, resp.text[:500]
        method, url = "POST", urljoin(resp.url, match.group(1))
    raise AssertionError(f"no redirect back to {prefix}")


class RecordingAdapter(DefaultSSOAdapter):
    """Notes every request django_sso sends (as sent, on the real wire); changes nothing."""

    sent: list[Any] = []

    def configure_http_session(self, session: requests.Session) -> None:
        session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        RecordingAdapter.sent.append(response.request)
        return response


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def sign_in_events() -> Any:
    """Every sign_in_succeeded / sign_in_failed sent during the test, in order."""
    events: list[tuple[str, dict[str, Any]]] = []

    def succeeded(sender: Any, **kwargs: Any) -> None:
        events.append(("succeeded", kwargs))

    def failed(sender: Any, **kwargs: Any) -> None:
        events.append(("failed", kwargs))

    signals.sign_in_succeeded.connect(succeeded)
    signals.sign_in_failed.connect(failed)
    yield events
    signals.sign_in_succeeded.disconnect(succeeded)
    signals.sign_in_failed.disconnect(failed)


@pytest.fixture
def outbound(settings: Any) -> Any:
    """The requests django_sso sent to the provider, through the documented adapter seam."""
    settings.DJANGO_SSO_ADAPTER = "tests.test_e2e_signin.RecordingAdapter"
    RecordingAdapter.sent = []

    def to(url: str) -> list[Any]:
        return [request for request in RecordingAdapter.sent if request.url.split("?")[0] == url]

    yield to
    RecordingAdapter.sent = []


def form_body(request: Any) -> dict[str, str]:
    body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
    return {k: v[0] for k, v in parse_qs(body).items()}


@pytest.fixture
def change_account(oidc_provider: Any) -> Any:
    """Change an account at the shared provider; every changed account is restored afterwards."""
    changed: set[str] = set()

    def change(login: str, **claims: Any) -> None:
        changed.add(login)
        oidc_provider.set_account(login, {**E2E_ACCOUNTS[login], **claims})

    yield change
    for login in changed:
        oidc_provider.set_account(login, E2E_ACCOUNTS[login])


@pytest.fixture
def local_alice(db: Any) -> Any:
    """A local account with alice's e-mail (differently cased) and a password."""
    return User.objects.create_user("alice.local", email="Alice@Example.com", password="local-pw")


@pytest.fixture
def local_carol(db: Any) -> Any:
    return User.objects.create_user("carol.local", email="carol@example.com", password="local-pw")


# ---- a first sign-in, a returning user -------------------------------------------------------


def test_first_sign_in_creates_the_user_and_identity_and_rotates_the_session(
    client, local_source, real_sign_in, sign_in_events
):
    result = real_sign_in()

    assert result.response.status_code == 303, result.response.content
    assert result.response["Location"] == settings.LOGIN_REDIRECT_URL
    user = User.objects.get()
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "alice",
        "alice@example.com",
        "Alice",
        "Example",
    )
    assert not user.has_usable_password()
    identity = Identity.objects.get()
    assert (identity.source, identity.subject, identity.user) == (local_source, "alice-sub", user)
    assert identity.claims["email_verified"] is True
    assert identity.claims["name"] == "Alice Example"
    assert not {"nonce", "iat", "exp", "aud", "auth_time"} & identity.claims.keys()
    # The session that carried the flow is gone; the signed-in one has another key and no flows.
    old_key = result.start.cookies[settings.SESSION_COOKIE_NAME].value
    new_key = result.response.cookies[settings.SESSION_COOKIE_NAME].value
    assert old_key and new_key and old_key != new_key
    assert not session_exists(old_key)
    assert client.session.session_key == new_key
    assert signed_in_user_id(client) == str(user.pk)
    assert client.session["_auth_user_backend"] == "django_sso.backends.SSOBackend"
    assert flows.SESSION_KEY not in client.session
    assert client.get("/whoami/").json() == {
        "authenticated": True,
        "username": "alice",
        "email": "alice@example.com",
        "groups": [],
        "permissions": [],
        "source": "local",
    }
    assert [(kind, event["user"], event["identity"], event["created"]) for kind, event in sign_in_events] == [
        ("succeeded", user, identity, True)
    ]


def test_returning_user_is_the_same_user_with_claims_refreshed(
    local_source, real_sign_in, change_account, sign_in_events
):
    op_session = requests.Session()
    first = real_sign_in(op_session=op_session)
    assert first.response.status_code == 303, first.response.content
    user = User.objects.get()

    change_account("alice", given_name="Alicia", family_name="Renamed", email="alicia@example.com")
    # A new browser at the site; the provider remembers alice, so this sign-in is silent there.
    browser = Client()
    second = real_sign_in(browser=browser, op_session=op_session)

    assert second.response.status_code == 303, second.response.content
    assert signed_in_user_id(browser) == str(user.pk)
    assert User.objects.count() == 1
    assert Identity.objects.count() == 1
    user.refresh_from_db()
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "alice",
        "alicia@example.com",
        "Alicia",
        "Renamed",
    )
    identity = Identity.objects.get()
    assert identity.user == user
    assert (identity.claims["given_name"], identity.claims["email"]) == ("Alicia", "alicia@example.com")
    assert browser.get("/whoami/").json()["email"] == "alicia@example.com"
    assert [event["created"] for _kind, event in sign_in_events] == [True, False]


def test_sign_in_signals(client, local_source, real_sign_in, sign_in_events):
    real_sign_in()
    real_sign_in(browser=Client())
    refused = real_sign_in(browser=Client(), params={"prompt": "none"})

    assert refused.response.status_code == 400
    user, identity = User.objects.get(), Identity.objects.get()
    assert [kind for kind, _event in sign_in_events] == ["succeeded", "succeeded", "failed"]
    for _kind, event in sign_in_events[:2]:
        assert (event["user"], event["source"], event["identity"]) == (user, local_source, identity)
        assert event["request"].user == user
    assert [event["created"] for _kind, event in sign_in_events[:2]] == [True, False]
    failed = sign_in_events[2][1]
    assert failed["source"] == local_source
    assert failed["error"].code == "sso.authorize.login_required"
    assert not failed["request"].user.is_authenticated


# ---- sign-in policy --------------------------------------------------------------------------


def test_new_user_refused_when_the_source_allows_no_signup(db, client, oidc_provider, real_sign_in):
    make_discovered_source(oidc_provider, "local", allow_signup=False)

    result = real_sign_in()

    assert_refused(result, client, 403, "sso.policy.signup_closed")
    assert not User.objects.exists()
    assert not Identity.objects.exists()


def test_email_linking_allowed_signs_into_the_existing_user(
    client, oidc_provider, local_alice, real_sign_in, sign_in_events
):
    source = make_discovered_source(oidc_provider, "local", link_existing_by_email=True, email_trusted=True)

    result = real_sign_in()

    assert result.response.status_code == 303, result.response.content
    assert signed_in_user_id(client) == str(local_alice.pk)
    assert User.objects.count() == 1
    identity = Identity.objects.get()
    assert (identity.source, identity.subject, identity.user) == (source, "alice-sub", local_alice)
    local_alice.refresh_from_db()
    assert (local_alice.username, local_alice.email) == ("alice.local", "alice@example.com")
    # The local address is trusted (the default adapter), so the password still works.
    assert local_alice.check_password("local-pw")
    assert sign_in_events[0][1]["created"] is True


def test_email_linking_refused_when_the_source_does_not_link(
    client, oidc_provider, local_alice, real_sign_in
):
    make_discovered_source(oidc_provider, "local", link_existing_by_email=False, email_trusted=True)
    email = local_alice.email

    result = real_sign_in()

    assert_refused(result, client, 403, "sso.policy.email_in_use")
    assert list(User.objects.all()) == [local_alice]
    assert not Identity.objects.exists()
    local_alice.refresh_from_db()
    assert local_alice.email == email


def test_unverified_email_never_links(client, oidc_provider, local_carol, real_sign_in):
    make_discovered_source(oidc_provider, "local", link_existing_by_email=True, email_trusted=True)

    result = real_sign_in(login="carol")

    assert_refused(result, client, 403, "sso.policy.email_in_use")
    assert list(User.objects.all()) == [local_carol]
    assert not Identity.objects.exists()
    local_carol.refresh_from_db()
    assert local_carol.check_password("local-pw")


# ---- UserInfo --------------------------------------------------------------------------------

# The claims parameter (OIDC Core 5.5) asks for groups at UserInfo only: with the scopes
# "openid email profile" the ID token has no groups, so groups can only come from UserInfo.
USERINFO_ONLY_GROUPS = json.dumps({"userinfo": {"groups": None}})


@pytest.mark.parametrize("fetch_userinfo", [True, False])
def test_userinfo_fetched_only_when_configured(
    db, client, oidc_provider, real_sign_in, outbound, fetch_userinfo
):
    source = make_discovered_source(
        oidc_provider,
        "local",
        fetch_userinfo=fetch_userinfo,
        extra_authorize_params=json.dumps({"claims": USERINFO_ONLY_GROUPS}),
    )

    result = real_sign_in()

    assert result.response.status_code == 303, result.response.content
    assert json.loads(result.authorize_params["claims"]) == {"userinfo": {"groups": None}}
    claims = Identity.objects.get().claims
    assert (claims["sub"], claims["email"]) == ("alice-sub", "alice@example.com")
    calls = outbound(source.userinfo_url)
    if fetch_userinfo:
        assert claims["groups"] == ["staff"]
        assert [(call.method, call.headers["Authorization"].split()[0]) for call in calls] == [
            ("GET", "Bearer")
        ]
    else:
        assert "groups" not in claims
        assert calls == []


# ---- next --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/whoami/?tab=1", "/whoami/?tab=1"),
        ("//evil.com", "/landing/"),
        ("https://evil.com/", "/landing/"),
        ("/\\evil.com", "/landing/"),
    ],
)
def test_next_kept_when_safe_else_login_redirect_url(
    client, settings, local_source, real_sign_in, next_url, expected
):
    settings.LOGIN_REDIRECT_URL = "/landing/"

    result = real_sign_in(next_url=next_url)

    assert result.response.status_code == 303, result.response.content
    assert result.response["Location"] == expected
    assert signed_in_user_id(client) == str(User.objects.get().pk)


# ---- the provider answers with an error --------------------------------------------------------


def test_prompt_none_without_provider_session_is_an_error_page(client, local_source, real_sign_in):
    result = real_sign_in(params={"prompt": "none"}, op_session=requests.Session())

    assert result.authorize_params["prompt"] == "none"
    assert query_of(result.callback_url)["error"] == "login_required"
    assert_refused(result, client, 400, "sso.authorize.login_required")
    assert b"Sign-in was cancelled or refused at the identity provider." in result.response.content
    assert not User.objects.exists()


def test_cancel_at_the_provider_is_access_denied(client, local_source, sign_in_events):
    start = client.post("/sso/local/login/")
    callback_url = cancel_at_provider(requests.Session(), start["Location"], "local")
    response = client.get(callback_path(callback_url))

    assert query_of(callback_url)["error"] == "access_denied"
    assert response.status_code == 400
    assert response.context["code"] == "sso.authorize.access_denied"
    assert signed_in_user_id(client) is None
    assert not User.objects.exists()
    assert [(kind, event["error"].code) for kind, event in sign_in_events] == [
        ("failed", "sso.authorize.access_denied")
    ]


# ---- PKCE, client authentication ----------------------------------------------------------------


def test_pkce_s256_challenge_matches_the_verifier_sent_to_the_token_endpoint(client, local_source, outbound):
    start = client.post("/sso/local/login/")
    params = query_of(start["Location"])
    verifier = client.session[flows.SESSION_KEY][params["state"]]["code_verifier"]

    assert params["code_challenge_method"] == "S256"
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    callback_url = sign_in_with_requests(
        requests.Session(),
        start["Location"],
        "alice",
        redirect_prefix="http://testserver/sso/local/callback/",
    )
    response = client.get(callback_path(callback_url))
    assert response.status_code == 303, response.content
    assert signed_in_user_id(client) == str(User.objects.get().pk)
    [token_request] = outbound(local_source.token_url)
    assert form_body(token_request)["code_verifier"] == verifier


def test_pkce_off_sends_no_challenge_and_signs_in(db, client, oidc_provider, real_sign_in, outbound):
    source = make_discovered_source(oidc_provider, "local-nopkce", use_pkce=False)

    result = real_sign_in("local-nopkce")

    assert not {"code_challenge", "code_challenge_method"} & result.authorize_params.keys()
    assert result.response.status_code == 303, result.response.content
    assert signed_in_user_id(client) == str(User.objects.get().pk)
    assert Identity.objects.get().source == source
    [token_request] = outbound(source.token_url)
    assert "code_verifier" not in form_body(token_request)


def test_client_secret_basic(db, client, oidc_provider, real_sign_in, outbound):
    source = make_discovered_source(oidc_provider, "local", token_endpoint_auth_method="client_secret_basic")

    result = real_sign_in()

    assert result.response.status_code == 303, result.response.content
    assert signed_in_user_id(client) == str(User.objects.get().pk)
    [token_request] = outbound(source.token_url)
    credentials = base64.b64encode(f"{E2E_CLIENT_ID}:{E2E_CLIENT_SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {credentials}"
    assert not {"client_id", "client_secret"} & form_body(token_request).keys()


def test_client_secret_post(db, client, oidc_provider, real_sign_in, outbound):
    source = make_discovered_source(
        oidc_provider,
        "local-post",
        client_id=E2E_POST_CLIENT_ID,
        token_endpoint_auth_method="client_secret_post",
    )

    result = real_sign_in("local-post")

    assert result.authorize_params["client_id"] == E2E_POST_CLIENT_ID
    assert result.response.status_code == 303, result.response.content
    assert signed_in_user_id(client) == str(User.objects.get().pk)
    [token_request] = outbound(source.token_url)
    assert "Authorization" not in token_request.headers
    body = form_body(token_request)
    assert (body["client_id"], body["client_secret"]) == (E2E_POST_CLIENT_ID, E2E_CLIENT_SECRET)


# ---- tampering and replay -------------------------------------------------------------------------


def test_tampered_state_is_refused_and_the_real_flow_stays_usable(client, local_source):
    start = client.post("/sso/local/login/")
    callback_url = sign_in_with_requests(
        requests.Session(),
        start["Location"],
        "alice",
        redirect_prefix="http://testserver/sso/local/callback/",
    )
    params = query_of(callback_url)
    state = params["state"]
    tampered = {**params, "state": state[:-1] + ("A" if state[-1] != "A" else "B")}

    response = client.get(f"/sso/local/callback/?{urlencode(tampered)}")

    assert response.status_code == 400
    assert response.context["code"] == "sso.state.unknown"
    assert signed_in_user_id(client) is None
    assert not User.objects.exists()
    # Nothing reached the token endpoint: the single-use code still works with the true state.
    assert state in client.session[flows.SESSION_KEY]
    assert client.get(callback_path(callback_url)).status_code == 303
    assert signed_in_user_id(client) == str(User.objects.get().pk)


def test_tampered_iss_is_refused_before_the_code_is_spent(client, local_source):
    start = client.post("/sso/local/login/")
    callback_url = sign_in_with_requests(
        requests.Session(),
        start["Location"],
        "alice",
        redirect_prefix="http://testserver/sso/local/callback/",
    )
    params = query_of(callback_url)
    assert params["iss"] == local_source.issuer

    response = client.get(f"/sso/local/callback/?{urlencode({**params, 'iss': 'https://evil.example'})}")

    assert response.status_code == 400
    assert response.context["code"] == "sso.callback.iss_mismatch"
    assert signed_in_user_id(client) is None
    assert not User.objects.exists()
    # RFC 9700 4.4: the flow is used up by the mix-up attempt; the genuine answer cannot finish it.
    assert client.get(callback_path(callback_url)).context["code"] == "sso.state.unknown"
    assert not User.objects.exists()


def test_replayed_callback_is_refused(client, local_source, real_sign_in):
    result = real_sign_in()
    assert result.response.status_code == 303, result.response.content
    user = User.objects.get()
    session_key = client.session.session_key

    # The same browser again: the flow was used; the session and the account are untouched.
    again = client.get(callback_path(result.callback_url))
    assert again.status_code == 400
    assert again.context["code"] == "sso.state.unknown"
    assert client.session.session_key == session_key
    assert signed_in_user_id(client) == str(user.pk)

    # Someone else with the URL (leaked through a log or a referrer) gets nothing.
    stranger = Client()
    stolen = stranger.get(callback_path(result.callback_url))
    assert stolen.status_code == 400
    assert stolen.context["code"] == "sso.state.unknown"
    assert signed_in_user_id(stranger) is None
    assert (User.objects.count(), Identity.objects.count()) == (1, 1)


# ---- max_age ---------------------------------------------------------------------------------------


def test_max_age_is_passed_on_and_auth_time_checked(client, local_source, real_sign_in):
    result = real_sign_in(params={"max_age": "300"})

    assert result.authorize_params["max_age"] == "300"
    assert result.response.status_code == 303, result.response.content
    assert signed_in_user_id(client) == str(User.objects.get().pk)


def test_max_age_exceeded_when_the_callback_comes_too_late(client, local_source):
    start = client.post("/sso/local/login/", {"max_age": "300"})
    callback_url = sign_in_with_requests(
        requests.Session(),
        start["Location"],
        "alice",
        redirect_prefix="http://testserver/sso/local/callback/",
    )
    # OIDC Core 3.1.3.7 step 13: auth_time + max_age (+ 60 s leeway) is in the past by now, while
    # the ID token itself (iat, exp) is still young enough.
    with time_machine.travel(time.time() + 420, tick=True):
        response = client.get(callback_path(callback_url))

    assert response.status_code == 400
    assert response.context["code"] == "sso.id_token.auth_time_too_old"
    assert signed_in_user_id(client) is None
    assert not User.objects.exists()
