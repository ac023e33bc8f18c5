"""SessionRevalidationMiddleware: free while the token is valid, a refresh when not, out when revoked."""

from __future__ import annotations

import time
from typing import Any

import pytest
import time_machine
from django.core.checks import run_checks
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_sso import sessions
from django_sso.checks import REVALIDATION_MIDDLEWARE
from django_sso.models import Identity, SSOSession, TokenSet
from tests.conftest import make_source
from tests.fakeop import FakeOP
from tests.test_tokens import expire

REVALIDATE = {
    "keep_refresh_token": True,
    "revalidate_session": True,
    "scopes": "openid email profile offline_access",
}


@pytest.fixture
def revalidating(db: Any, op: FakeOP) -> Any:
    return make_source(op, "honest", **REVALIDATE)


def whoami(browser: Any) -> dict[str, Any]:
    return browser.get("/whoami/").json()


def make_due(browser: Any) -> None:
    """Expire the stored access token and the session's copy of its expiry."""
    expire(Identity.objects.get())
    session = browser.session
    session[sessions.SESSION_KEY] = {**session[sessions.SESSION_KEY], "valid_until": 0}
    session.save()


def test_requests_while_the_token_is_valid_cost_nothing(client, op, revalidating, sign_in, settings):
    sign_in()
    state = client.session[sessions.SESSION_KEY]
    assert state["revalidate"] is True
    assert state["valid_until"] > 0
    provider_calls = len(op.requests)
    with CaptureQueriesContext(connection) as with_middleware:
        for _ in range(10):
            assert whoami(client)["authenticated"] is True
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != REVALIDATION_MIDDLEWARE]
    client.handler.load_middleware()
    with CaptureQueriesContext(connection) as without_middleware:
        for _ in range(10):
            assert whoami(client)["authenticated"] is True
    # No provider call, and not one database query more than without the middleware.
    assert len(op.requests) == provider_calls
    assert len(with_middleware.captured_queries) == len(without_middleware.captured_queries)


def test_an_expired_token_is_refreshed_once_and_the_session_goes_on(client, op, revalidating, sign_in):
    sign_in()
    make_due(client)
    old = TokenSet.objects.get().access_token
    assert whoami(client)["authenticated"] is True
    assert len(op.refresh_requests()) == 1
    assert TokenSet.objects.get().access_token != old
    for _ in range(5):
        assert whoami(client)["authenticated"] is True
    assert len(op.refresh_requests()) == 1


def test_a_token_refreshed_elsewhere_needs_no_provider_call(client, op, revalidating, sign_in):
    sign_in()
    session = client.session
    session[sessions.SESSION_KEY] = {**session[sessions.SESSION_KEY], "valid_until": 0}
    session.save()  # this session's copy is stale, the stored token is not
    assert whoami(client)["authenticated"] is True
    assert op.refresh_requests() == []
    assert client.session[sessions.SESSION_KEY]["valid_until"] > 0


def test_a_revoked_refresh_token_signs_the_user_out_on_that_request(
    client, op, revalidating, sign_in, sso_log
):
    sign_in()
    op.revoke_refresh_tokens()
    make_due(client)
    assert whoami(client)["authenticated"] is False
    assert not TokenSet.objects.exists()
    assert not SSOSession.objects.exists()
    assert "sso.revalidate.signed_out code=sso.refresh.invalid_grant source=honest" in sso_log.text
    assert len(op.refresh_requests()) == 1


def test_a_provider_outage_defers_the_check_instead_of_signing_out(
    client, op, revalidating, sign_in, settings
):
    settings.DJANGO_SSO_REVALIDATE_RETRY = 60
    sign_in()
    make_due(client)
    op.scenario["respond"] = {"/token": (502, {"Content-Type": "text/plain"}, b"bad gateway")}
    assert whoami(client)["authenticated"] is True
    assert whoami(client)["authenticated"] is True
    assert len(op.refresh_requests()) == 1  # not one provider timeout per request
    del op.scenario["respond"]
    with time_machine.travel(time.time() + 61, tick=False):
        assert whoami(client)["authenticated"] is True
    assert len(op.refresh_requests()) == 2
    assert TokenSet.objects.get().expires_at.timestamp() > time.time() + 200


def test_switching_revalidation_off_stops_it(client, op, revalidating, sign_in):
    sign_in()
    revalidating.revalidate_session = False
    revalidating.save()
    op.revoke_refresh_tokens()
    make_due(client)
    assert whoami(client)["authenticated"] is True
    assert client.session[sessions.SESSION_KEY]["revalidate"] is False
    assert op.refresh_requests() == []


def test_sources_without_revalidation_are_left_alone(client, op, db, sign_in):
    make_source(op, "honest", keep_refresh_token=True, scopes="openid offline_access")
    sign_in()
    assert "revalidate" not in client.session[sessions.SESSION_KEY]
    expire(Identity.objects.get())
    assert whoami(client)["authenticated"] is True
    assert op.refresh_requests() == []


def test_revalidation_needs_kept_tokens(op, db):
    from django_sso.forms import SourceForm

    source = make_source(op, "honest")
    data = {**SourceForm(instance=source).initial, "revalidate_session": True, "extra_authorize_params": "{}"}
    form = SourceForm(data={k: v for k, v in data.items() if v is not None}, instance=source)
    assert not form.is_valid()
    assert "revalidate_session" in form.errors


def test_the_middleware_must_come_after_authentication(settings):
    def check_ids() -> list[str]:
        return [m.id for m in run_checks(tags=["django_sso"])]

    assert "django_sso.E005" not in check_ids()  # the example settings have it in its place
    others = [m for m in settings.MIDDLEWARE if m != REVALIDATION_MIDDLEWARE]
    settings.MIDDLEWARE = [REVALIDATION_MIDDLEWARE, *others]
    assert "django_sso.E005" in check_ids()
    settings.MIDDLEWARE = [m for m in others if "AuthenticationMiddleware" not in m] + [
        REVALIDATION_MIDDLEWARE
    ]
    assert "django_sso.E005" in check_ids()
