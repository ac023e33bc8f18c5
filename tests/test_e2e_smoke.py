"""The sign-in against the real provider: discovery on save, then a full sign-in."""

import pytest
from django.contrib.auth import get_user_model

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
