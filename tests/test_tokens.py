"""django_sso.tokens: tokens kept at sign-in, encrypted at rest, refreshed once, rotation, failures."""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_sso import tokens
from django_sso.exceptions import ProviderError, ReauthenticationRequired
from django_sso.models import Identity, SSOSession, TokenSet
from tests.conftest import make_source
from tests.fakeop import FakeOP, Recorded
from tests.rejections import assert_no_secrets, assert_reason_logged, log_text, provider_secrets

KEEP = {"keep_refresh_token": True, "scopes": "openid email profile offline_access"}


@pytest.fixture
def keeping(db: Any, op: FakeOP) -> Any:
    """A source that keeps tokens, asking for offline_access (so the provider gives a refresh token)."""
    return make_source(op, "honest", **KEEP)


def signed_in(sign_in: Any, **kwargs: Any) -> Identity:
    result = sign_in(**kwargs)
    assert result.response.status_code == 303, result.response.content
    return Identity.objects.select_related("user", "source").get()


def expire(identity: Identity, seconds_left: int = -1) -> None:
    """Make the stored access token expire (or come within the refresh margin)."""
    TokenSet.objects.filter(identity=identity).update(
        expires_at=timezone.now() + datetime.timedelta(seconds=seconds_left)
    )


def test_tokens_are_kept_encrypted_when_the_source_keeps_them(keeping, op, sign_in):
    identity = signed_in(sign_in)
    token_set = identity.token_set
    assert token_set.access_token in op.access_tokens
    assert token_set.refresh_token in op.refresh_tokens
    assert token_set.id_token.count(".") == 2
    assert token_set.scope_list == ["openid", "email", "profile", "offline_access"]
    nonce = token_set.id_claims.pop("nonce")
    assert token_set.id_claims == {"iss": op.issuer, "sub": "alice-sub", "aud": op.client_id}
    assert isinstance(nonce, str) and len(nonce) >= 43
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token, id_token FROM django_sso_tokenset")
        raw = cursor.fetchone()
    for value, plain in zip(
        raw, (token_set.access_token, token_set.refresh_token, token_set.id_token), strict=True
    ):
        assert value.startswith("fernet:") and plain not in value
    assert_no_secrets(str(token_set), provider_secrets(op), where="__str__")


def test_no_tokens_are_kept_by_default(source, sign_in):
    signed_in(sign_in)
    assert not TokenSet.objects.exists()


def test_a_valid_token_costs_no_provider_call(keeping, op, sign_in, django_assert_num_queries):
    identity = signed_in(sign_in)
    before = len(op.requests)
    with django_assert_num_queries(2):  # the identity, the token set
        token = tokens.get_access_token(identity.user, keeping)
    assert token == identity.token_set.access_token
    assert len(op.requests) == before


def test_an_expiring_token_is_refreshed_with_rotation(keeping, op, sign_in):
    identity = signed_in(sign_in)
    old = identity.token_set
    expire(identity, seconds_left=30)  # within the 60 s margin
    token = tokens.get_access_token(identity.user, keeping)
    new = TokenSet.objects.get(identity=identity)
    assert token == new.access_token != old.access_token
    assert new.refresh_token != old.refresh_token
    assert op.refresh_tokens[old.refresh_token]["used"] is True
    assert new.expires_at > timezone.now() + datetime.timedelta(seconds=200)
    (request,) = op.refresh_requests()
    # RT-02: only the scopes granted before are asked for, with the client authenticated.
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": old.refresh_token,
        "scope": "openid email profile offline_access",
    }
    assert request.headers["Authorization"].startswith("Basic ")


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(keeping, op, sign_in):
    identity = signed_in(sign_in)
    old = identity.token_set.refresh_token
    op.scenario["refresh"] = {"rotate": False}
    expire(identity)
    tokens.get_access_token(identity.user, keeping)
    assert TokenSet.objects.get(identity=identity).refresh_token == old


def test_a_narrower_scope_is_stored_as_granted(keeping, op, sign_in):
    identity = signed_in(sign_in)
    op.scenario["refresh"] = {"token": {"scope": "openid offline_access"}}
    expire(identity)
    tokens.get_access_token(identity.user, keeping)
    assert TokenSet.objects.get(identity=identity).scope == "openid offline_access"
    expire(identity)
    tokens.get_access_token(identity.user, keeping)
    assert op.refresh_requests()[-1].form["scope"] == "openid offline_access"


def test_a_refreshed_id_token_is_kept(keeping, op, sign_in):
    identity = signed_in(sign_in)
    old = identity.token_set.id_token
    expire(identity)
    tokens.get_access_token(identity.user, keeping)
    assert TokenSet.objects.get(identity=identity).id_token != old


def test_a_refresh_without_an_id_token_keeps_the_old_one(keeping, op, sign_in):
    identity = signed_in(sign_in)
    old = identity.token_set.id_token
    op.scenario["refresh"] = {"no_id_token": True}
    expire(identity)
    tokens.get_access_token(identity.user, keeping)
    assert TokenSet.objects.get(identity=identity).id_token == old


def test_a_revoked_refresh_token_deletes_the_tokens_once(keeping, op, sign_in, sso_log):
    identity = signed_in(sign_in)
    op.revoke_refresh_tokens()
    expire(identity)
    with pytest.raises(ReauthenticationRequired) as raised:
        tokens.get_access_token(identity.user, keeping)
    assert raised.value.code == "sso.refresh.invalid_grant"
    assert not TokenSet.objects.exists()
    assert_reason_logged(sso_log, "sso.refresh.invalid_grant")
    # Never again with the same refresh token: the next call fails without asking the provider.
    with pytest.raises(ReauthenticationRequired) as again:
        tokens.get_access_token(identity.user, keeping)
    assert again.value.code == "sso.tokens.none"
    assert len(op.refresh_requests()) == 1
    assert_no_secrets(log_text(sso_log), provider_secrets(op))


def test_a_broken_provider_keeps_the_tokens_for_a_later_try(keeping, op, sign_in):
    identity = signed_in(sign_in)
    expire(identity)
    op.scenario["respond"] = {"/token": (503, {"Content-Type": "text/html"}, b"<h1>down</h1>")}
    with pytest.raises(ProviderError):
        tokens.get_access_token(identity.user, keeping)
    assert TokenSet.objects.filter(identity=identity).exists()
    del op.scenario["respond"]
    assert tokens.get_access_token(identity.user, keeping)


def test_without_a_refresh_token_an_expired_token_needs_a_new_sign_in(db, op, sign_in):
    source = make_source(op, "honest", keep_refresh_token=True)  # no offline_access: no refresh token
    identity = signed_in(sign_in)
    assert identity.token_set.refresh_token == ""
    assert tokens.get_access_token(identity.user, source) == identity.token_set.access_token
    expire(identity)
    with pytest.raises(ReauthenticationRequired) as raised:
        tokens.get_access_token(identity.user, source)
    assert raised.value.code == "sso.refresh.no_refresh_token"
    assert op.refresh_requests() == []


def test_a_user_without_an_identity_at_the_source_must_sign_in(keeping, attacker_source, sign_in):
    identity = signed_in(sign_in)
    with pytest.raises(ReauthenticationRequired) as raised:
        tokens.get_access_token(identity.user, attacker_source)
    assert raised.value.code == "sso.tokens.no_identity"


def test_a_new_sign_in_replaces_the_tokens(keeping, op, sign_in):
    first = signed_in(sign_in).token_set.access_token
    second = signed_in(sign_in).token_set.access_token
    assert first != second
    assert TokenSet.objects.count() == 1


def test_plain_oauth2_sources_refresh_too(db, op, sign_in):
    source = make_source(op, "honest", protocol="oauth2", **KEEP)
    op.scenario["userinfo"] = {}
    identity = signed_in(sign_in)
    assert identity.token_set.id_token == "" and identity.token_set.id_claims == {}
    expire(identity)
    assert tokens.get_access_token(identity.user, source) == TokenSet.objects.get().access_token
    assert len(op.refresh_requests()) == 1


# ---- concurrency: one refresh for many requests -----------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_make_one_refresh(op, sign_in):
    """Eight workers find the token expired at once: one refresh, and all get its access token."""
    source = make_source(op, "honest", **KEEP)
    identity = signed_in(sign_in)
    expire(identity)

    def answer(request: Any) -> Any:
        time.sleep(0.3)  # long enough for every worker to be waiting on the row lock
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        return op.token(Recorded("POST", request.url, dict(request.headers), body))

    op.scenario["respond"] = {"/token": answer}
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(tokens.get_access_token(identity.user, source))
        except Exception as exc:  # reported by the assertions below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(op.refresh_requests()) == 1
    assert len(set(results)) == 1 and isinstance(results[0], str), results
    assert results[0] == TokenSet.objects.get().access_token
    assert SSOSession.objects.count() == 1
