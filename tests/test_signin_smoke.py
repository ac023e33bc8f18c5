"""A first end-to-end sign-in against the in-process provider."""

from django.contrib.auth import get_user_model

from django_sso.models import Identity


def test_sign_in_creates_user_and_logs_in(client, source, sign_in):
    result = sign_in(next_url="/whoami/")
    assert result.response.status_code == 303, result.response.content
    assert result.response["Location"] == "/whoami/"
    user = get_user_model().objects.get()
    assert user.username == "alice"
    assert user.email == "alice@example.com"
    assert Identity.objects.get().subject == "alice-sub"
    data = client.get("/whoami/").json()
    assert data["authenticated"] is True
    assert data["source"] == "honest"
