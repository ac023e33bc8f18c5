"""The sign-in against the real provider: discovery on save, then a full sign-in."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.e2e


def test_full_sign_in_against_the_real_provider(client, local_source, real_sign_in):
    assert local_source.issuer.startswith("http://127.0.0.1:")
    assert local_source.iss_parameter_supported is True
    result = real_sign_in(next_url="/whoami/")
    assert result.response.status_code == 303, result.response.content
    assert result.response["Location"] == "/whoami/"
    user = get_user_model().objects.get()
    assert (user.username, user.email, user.first_name) == ("alice", "alice@example.com", "Alice")
    assert client.get("/whoami/").json()["authenticated"] is True


def test_callbacks_reuse_the_connection_to_the_provider(local_source, real_sign_in, monkeypatch):
    """Keep-alive: the token and UserInfo calls of later sign-ins open no new connection."""
    import urllib3.connection

    from django_sso.internal import http

    http.reset_pool()
    opened = []
    original = urllib3.connection.HTTPConnection.connect

    def counting_connect(self):
        opened.append(self.port)
        return original(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", counting_connect)
    for login in ("alice", "bob", "alice"):
        result = real_sign_in(login=login, browser=Client())
        assert result.response.status_code == 303
    # The sign-in driver's own browser sessions open connections too; count django_sso's only:
    # the provider's port is shared, so compare with a run that pooled nothing.
    pooled = len(opened)
    opened.clear()
    monkeypatch.setattr(http, "pooled_session", http.new_session)
    for login in ("alice", "bob", "alice"):
        assert real_sign_in(login=login, browser=Client()).response.status_code == 303
    unpooled = len(opened)
    # Three callbacks, each a token and a UserInfo call: five new connections saved at least
    # (the first call of the run opens one; a closed idle connection may add one more).
    assert unpooled - pooled >= 4, (pooled, unpooled)


def test_provider_cookies_are_never_kept(network, op, source, sign_in):
    from django_sso.internal import http

    original = op.token

    def token_with_cookie(req):
        status, headers, body = original(req)
        return status, {**headers, "Set-Cookie": "affinity=user-a; Path=/"}, body

    op.token = token_with_cookie
    assert sign_in().response.status_code == 303
    assert list(http.pooled_session().cookies) == []
