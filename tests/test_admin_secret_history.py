"""The admin's change history names the client secret only when a new one was typed."""

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from tests.conftest import make_source
from tests.test_discovery import INLINE_DATA


def _change(admin_client, source, secret):
    data = {
        "name": source.name,
        "slug": source.slug,
        "protocol": "oidc",
        "enabled": "on",
        "display_order": 0,
        "client_id": source.client_id,
        "client_secret": secret,
        "token_endpoint_auth_method": "client_secret_basic",
        "issuer": source.issuer,
        "authorization_url": source.authorization_url,
        "token_url": source.token_url,
        "userinfo_url": source.userinfo_url,
        "jwks_url": source.jwks_url,
        "jwks": "",
        "scopes": "openid email profile",
        "use_pkce": "on",
        "extra_authorize_params": "{}",
        "signing_algorithms": "RS256",
        "fetch_userinfo": "on",
        "allow_signup": "on",
        **INLINE_DATA,
    }
    return admin_client.post(f"/admin/django_sso/source/{source.pk}/change/", data)


def test_blank_secret_is_not_recorded_as_a_change(db, client, op):
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.login(username="root", password="pw")
    source = make_source(op, "honest")
    response = _change(client, source, "")
    assert response.status_code == 302, response.content.decode()[:3000]
    response = _change(client, source, "a-new-secret")
    assert response.status_code == 302
    messages = [entry.get_change_message() for entry in LogEntry.objects.order_by("pk")]
    assert len(messages) == 2
    assert "client secret" not in messages[0].lower()
    assert "client secret" in messages[1].lower()
    source.refresh_from_db()
    assert source.client_secret == "a-new-secret"
