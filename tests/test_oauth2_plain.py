"""Plain OAuth 2 sources (no ID token): the profile URL's answer, mapped by the source's fields.

Unit tests of :mod:`django_sso.internal.profile`, then whole sign-ins through the in-process
provider: a generic plain OAuth 2 source, and GitHub's shape (``/user`` plus ``/user/emails``)
through the GitHub preset. The same flow against the real provider is in test_providers_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model

from django_sso import presets
from django_sso.exceptions import TokenValidationError
from django_sso.internal import profile
from django_sso.models import Identity
from django_sso.presets.form import build_source_form
from tests.conftest import make_source
from tests.fakeop import DROP, FakeOP, Recorded, _json
from tests.rejections import calls, query_of

User = get_user_model()
DATA = Path(__file__).parent / "data" / "github"


def fields(**overrides: Any) -> Any:
    values = {
        "profile_subject_field": "sub",
        "profile_email_field": "email",
        "profile_name_field": "name",
        "profile_email_verified_field": "",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


# ---- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), (583231, "583231"), (0, "0"), ("Mixed-Case", "Mixed-Case")],
)
def test_a_string_or_integer_id_is_the_subject(value, expected):
    assert profile.normalise(fields(profile_subject_field="id"), {"id": value})["sub"] == expected


@pytest.mark.parametrize(
    "value",
    [None, "", True, False, 1.5, 1e20, ["583231"], {"id": 1}, "x" * 256],
    ids=["null", "empty", "true", "false", "float", "big float", "list", "object", "too long"],
)
def test_a_subject_that_is_not_a_scalar_id_is_refused_not_coerced(value):
    with pytest.raises(TokenValidationError) as caught:
        profile.normalise(fields(profile_subject_field="id"), {"id": value})
    assert caught.value.code == "sso.profile.bad_sub"


def test_a_dotted_path_reaches_nested_fields():
    data = {"data": {"id": "42", "email": "a@example.com", "name": "A", "confirmed": True}}
    claims = profile.normalise(
        fields(
            profile_subject_field="data.id",
            profile_email_field="data.email",
            profile_name_field="data.name",
            profile_email_verified_field="data.confirmed",
        ),
        data,
    )
    assert (claims["sub"], claims["email"], claims["name"], claims["email_verified"]) == (
        "42",
        "a@example.com",
        "A",
        True,
    )


def test_the_profile_cannot_pick_its_own_subject_or_verification():
    raw = {"id": 7, "sub": "admin", "email": "a@example.com", "email_verified": True, "name": ["x"]}
    claims = profile.normalise(fields(profile_subject_field="id"), raw)
    assert claims["sub"] == "7"
    # No verified field configured: the profile's own email_verified does not count.
    assert claims["email_verified"] is False
    assert "name" not in claims


@pytest.mark.parametrize("value", ["true", 1, "yes", None])
def test_only_the_json_true_counts_as_verified(value):
    claims = profile.normalise(
        fields(profile_email_verified_field="verified_email"),
        {"sub": "s", "email": "a@example.com", "verified_email": value},
    )
    assert claims["email_verified"] is False


def test_aggregated_claims_are_dropped_and_other_members_kept():
    claims = profile.normalise(
        fields(), {"sub": "s", "_claim_names": {}, "_claim_sources": {}, "login": "octo"}
    )
    assert claims == {"sub": "s", "login": "octo"}


def emails() -> list[dict[str, Any]]:
    return json.loads((DATA / "emails.json").read_text())


def test_the_primary_verified_address_wins():
    claims = profile.normalise(fields(), {"sub": "s", "email": "public@example.com"}, emails=emails())
    assert (claims["email"], claims["email_verified"]) == ("octocat@example.com", True)


def test_the_profile_address_is_verified_only_when_the_list_says_so():
    entries = [
        {"email": "p@example.com", "primary": True, "verified": False},
        {"email": "a@example.com", "verified": True},
    ]
    assert (
        profile.normalise(fields(), {"sub": "s", "email": "a@example.com"}, emails=entries)["email_verified"]
        is True
    )
    assert (
        profile.normalise(fields(), {"sub": "s", "email": "b@example.com"}, emails=entries)["email_verified"]
        is False
    )
    # No address in the profile: the primary one, unverified.
    claims = profile.normalise(fields(), {"sub": "s", "email": None}, emails=entries)
    assert (claims["email"], claims["email_verified"]) == ("p@example.com", False)


def test_junk_entries_in_the_list_are_ignored():
    entries = [
        "x",
        None,
        {"email": 5, "primary": True, "verified": True},
        {"email": "no-at", "verified": True},
    ]
    claims = profile.normalise(fields(), {"sub": "s"}, emails=entries)
    assert "email" not in claims


# ---- a generic plain OAuth 2 source against the in-process provider --------------------------


@pytest.fixture
def plain(db, op):
    op.scenario["authorize"] = {"iss": None}
    return make_source(
        op,
        "plain",
        protocol="oauth2",
        issuer="",
        jwks_url="",
        iss_parameter_supported=False,
        scopes="profile email",
        profile_subject_field="sub",
        profile_email_verified_field="email_verified",
    )


def test_plain_oauth2_sign_in_reads_the_profile(client, op, plain, sign_in):
    result = sign_in("plain")
    assert result.response.status_code == 303, result.response.content
    params = result.authorize_params
    assert params["response_type"] == "code"
    assert params["scope"] == "profile email"  # no openid, no nonce: not OpenID Connect
    assert "nonce" not in params
    assert params["code_challenge_method"] == "S256"
    identity = Identity.objects.get()
    assert identity.subject == "alice-sub"
    assert identity.user.email == "alice@example.com"
    assert identity.claims["email_verified"] is True
    (userinfo,) = calls(op, "/userinfo")
    assert userinfo.headers["Authorization"].startswith("Bearer at-")
    assert "access_token" not in userinfo.url


def test_plain_oauth2_ignores_an_id_token_it_did_not_ask_for(client, op, plain, sign_in):
    op.scenario["token"] = {"id_token": "not.a.token"}
    assert sign_in("plain").response.status_code == 303


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ((401, {"Content-Type": "application/json"}, b"{}"), "sso.profile.status"),
        ((200, {"Content-Type": "text/html"}, b"<html>"), "sso.profile.not_json"),
        ((200, {"Content-Type": "application/json"}, b"[1, 2]"), "sso.profile.not_json"),
        ((302, {"Location": "https://collector.example/"}, b""), "sso.http.redirect_refused"),
    ],
    ids=["401", "html", "array", "redirect"],
)
def test_a_bad_profile_answer_stops_the_sign_in(client, op, plain, sign_in, network, answer, code):
    op.scenario["respond"] = {"/userinfo": answer}
    result = sign_in("plain")
    assert result.response.status_code == 502
    assert result.response.context["code"] == code
    assert "_auth_user_id" not in client.session
    assert network.collector == []


# ---- GitHub, through its preset --------------------------------------------------------------


class FakeGitHub:
    """github.com (authorize, token) and api.github.com (/user, /user/emails) in process."""

    def __init__(self, network: Any) -> None:
        self.web = FakeOP("https://github.com", key_index=0)
        self.api = FakeOP("https://api.github.com", key_index=0)
        self.user = json.loads((DATA / "user.json").read_text())
        self.emails = emails()
        # GitHub sends no iss, no ID token, no expires_in; a lower-case token type and commas.
        self.web.scenario["authorize"] = {"iss": None}
        self.web.scenario["token"] = {
            "id_token": DROP,
            "expires_in": DROP,
            "token_type": "bearer",
            "scope": "read:user,user:email",
        }
        self.web.scenario["respond"] = {"/login/oauth/access_token": self._token}
        self.api.scenario["respond"] = {
            "/user": self._profile(lambda: self.user),
            "/user/emails": self._profile(lambda: self.emails),
        }
        network.ops += [self.web, self.api]

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        return self.web.token(Recorded("POST", request.url or "", dict(request.headers), body))

    def _profile(self, value: Any) -> Any:
        def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in getattr(self.web, "access_tokens", {}):
                return 401, {"Content-Type": "application/json"}, b'{"message": "Bad credentials"}'
            return _json(value())

        return answer


@pytest.fixture
def github(db, network):
    return FakeGitHub(network)


def github_source(**overrides: Any) -> Any:
    preset = presets.get("github")
    form = build_source_form(
        preset,
        preset.clean_options({}),
        {"name": "GitHub", "slug": "github", "client_id": "Iv1.gh-client", "client_secret": "gh-secret"},
        overrides,
    )
    assert form.is_valid(), form.errors
    return form.save()


def test_github_sign_in_uses_the_numeric_id_and_the_primary_verified_address(client, github, sign_in):
    source = github_source()
    result = sign_in("github", provider=github.web)
    assert result.response.status_code == 303, result.response.content
    assert result.authorize_url.startswith("https://github.com/login/oauth/authorize?")
    assert query_of(result.authorize_url)["scope"] == "read:user user:email"
    identity = Identity.objects.get(source=source)
    assert identity.subject == "583231"
    assert identity.user.email == "octocat@example.com"
    assert identity.claims["email_verified"] is True
    assert identity.claims["login"] == "octocat"
    assert [r.path for r in github.api.requests] == ["/user", "/user/emails"]
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in github.api.requests)


def test_github_links_an_existing_account_only_with_a_verified_address(client, github, sign_in):
    github_source(link_existing_by_email=True, email_trusted=True)
    existing = User.objects.create_user("octo", email="octocat@example.com")
    assert sign_in("github", provider=github.web).response.status_code == 303
    assert Identity.objects.get().user == existing


def test_github_refuses_linking_when_the_address_is_not_verified(client, github, sign_in):
    github_source(link_existing_by_email=True, email_trusted=True)
    User.objects.create_user("octo", email="octocat@example.com")
    for entry in github.emails:
        entry["verified"] = False
    result = sign_in("github", provider=github.web)
    assert result.response.status_code == 403
    assert result.response.context["code"] == "sso.policy.email_in_use"


def test_github_without_the_email_scope_fails_closed(client, github, sign_in):
    github_source()
    github.api.scenario["respond"]["/user/emails"] = (403, {"Content-Type": "application/json"}, b"{}")
    result = sign_in("github", provider=github.web)
    assert result.response.status_code == 502
    assert result.response.context["code"] == "sso.profile.status"
    assert Identity.objects.count() == 0
