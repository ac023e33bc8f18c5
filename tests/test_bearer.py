"""Resource-server mode (issue 5): principals, permissions, caches, entry points, configuration.

The RS-* conformance cases are in ``test_cases_resource_server.py``; key rotation and the
outbound-call count in ``test_bearer_keys.py``; DRF in ``test_bearer_drf.py``; the real provider in
``test_bearer_e2e.py``.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_sso import bearer as bearer_module
from django_sso.exceptions import (
    BearerUnavailable,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
)
from django_sso.forms import SourceForm
from django_sso.internal import jws, source_map, token_cache
from django_sso.models import Identity, Source
from django_sso.principals import ServicePrincipal
from tests.bearer_support import (
    API,
    _fresh_bearer_memory,  # noqa: F401  (autouse)
    access_claims,
    assert_refused,
    bearer,
    grant,
    link_user,
    make_api_source,
    mint_at,
    service_claims,
)
from tests.fakeop import FakeOP

pytestmark = pytest.mark.urls("tests.bearer_urls")


@pytest.fixture
def api(db: Any, op: FakeOP) -> Source:
    return make_api_source(op)


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count signature checks (jws.decode) made for bearer tokens."""
    calls: list[str] = []
    real = jws.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("kind", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(jws, "decode", counting)
    return calls


def warm(client: Any, op: FakeOP, **claims: Any) -> None:
    """One request, so keys, the source map and the scope resolution are in memory."""
    assert (
        client.get("/plain/whoami/", **bearer(mint_at(op, service_claims(op, **claims)))).status_code == 200
    )


# ---- principals --------------------------------------------------------------------------------
def test_service_principal_is_not_a_user_row(db, op, api, client):
    token = mint_at(op, service_claims(op, scope="app:manage_orders"))
    body = client.get("/plain/whoami/", **bearer(token)).json()
    assert body == {"authenticated": True, "username": "service:honest:svc-client", "manage_orders": True}
    assert not get_user_model().objects.exists()
    assert not Identity.objects.exists()


def test_service_principal_answers_like_a_user(db, op, api):
    principal = bearer_module.validate(mint_at(op, service_claims(op, scope="app:manage_orders app:other")))
    service = ServicePrincipal(principal)
    assert service.is_authenticated and service.is_active and not service.is_anonymous
    assert not service.is_staff and not service.is_superuser
    assert service.pk is None and service.get_username() == str(service) == "service:honest:svc-client"
    assert service.has_perm("shop.manage_orders") and not service.has_perm("shop.manage_users")
    assert service.has_perms(["shop.manage_orders"]) and not service.has_perms(["shop.manage_users"])
    assert service.has_module_perms("shop") and not service.has_module_perms("auth")
    assert service.get_all_permissions() == {"shop.manage_orders"}
    assert service.get_group_permissions() == set()
    assert list(service.groups.all()) == [] and list(service.user_permissions.all()) == []
    assert service.scopes == {"app:manage_orders", "app:other"}
    assert service == ServicePrincipal(principal) and len({service, ServicePrincipal(principal)}) == 1
    with pytest.raises(ValueError):
        service.has_perms("shop.manage_orders")
    for method in (service.save, service.delete):
        with pytest.raises(NotImplementedError):
            method()


def test_user_principal_keeps_its_model_and_gets_the_token_grants(db, op, api, client):
    user = link_user(api)
    token = bearer_module.validate(mint_at(op))
    principal = bearer_module.principal_for(None, token)
    assert isinstance(principal, get_user_model()) and principal.pk == user.pk
    assert principal.bearer_token is token
    assert principal.has_perm("shop.manage_orders")
    assert principal.get_all_permissions() == {"shop.manage_orders"}
    assert principal.has_module_perms("shop") and not principal.has_module_perms("auth")
    assert principal.get_user_permissions() == set(), "what the account holds is unchanged"
    assert not get_user_model().objects.get(pk=user.pk).has_perm("shop.manage_orders")
    # Templates' {% if perms... %} see the token's grants too.
    assert client.get("/plain/perms/", **bearer(mint_at(op))).json() == {"rendered": "yes"}
    assert client.get("/plain/perms/").json() == {"rendered": "no"}


def test_a_superuser_token_has_only_its_scopes(db, op, api, client):
    link_user(api, is_superuser=True, is_staff=True)
    body = client.get("/plain/whoami/", **bearer(mint_at(op, access_claims(op, scope="openid")))).json()
    assert body["username"] == "alice" and body["manage_orders"] is False


def test_unknown_or_inactive_user_is_refused(db, op, api, client, caplog):
    token = mint_at(op)
    assert_refused(client.get("/deco/any/", **bearer(token)), 401, "invalid_token", token)
    link_user(api, is_active=False)
    assert_refused(client.get("/deco/any/", **bearer(token)), 401, "invalid_token", token)
    assert "code=sso.bearer.unknown_user" in caplog.text


def test_first_sight_creates_the_user_when_the_source_allows(db, op, client):
    source = make_api_source(op, bearer_create_users=True)
    claims = access_claims(op, sub="new-sub", email="new@example.com", preferred_username="newbie")
    response = client.get("/plain/whoami/", **bearer(mint_at(op, claims)))
    assert response.json()["username"] == "newbie"
    identity = Identity.objects.get(source=source, subject="new-sub")
    # The next request writes nothing.
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/plain/whoami/", **bearer(mint_at(op, claims))).json()["username"] == "newbie"
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries.captured_queries)
    assert Identity.objects.get(pk=identity.pk).updated_at == identity.updated_at
    # The sign-in policy applies: closed sign-up refuses first sight.
    source.allow_signup = False
    source.save()
    other = mint_at(op, access_claims(op, sub="other-sub", email="o@example.com"))
    assert_refused(client.get("/deco/any/", **bearer(other)), 401, "invalid_token", other)


# ---- queries per request -----------------------------------------------------------------------
def test_queries_per_request_service_principal(db, op, api, client, django_assert_num_queries):
    warm(client, op)
    with django_assert_num_queries(0):  # a fresh token
        assert client.get("/api/orders/", **bearer(mint_at(op, service_claims(op)))).status_code == 200
    token = mint_at(op, service_claims(op))
    client.get("/api/orders/", **bearer(token))
    with django_assert_num_queries(0):  # a repeated token
        assert client.get("/api/orders/", **bearer(token)).status_code == 200


def test_queries_per_request_user(db, op, api, client, django_assert_num_queries):
    link_user(api)
    warm(client, op)
    with django_assert_num_queries(1):  # the identity with its user, in one query
        assert client.get("/api/orders/", **bearer(mint_at(op))).status_code == 200
    token = mint_at(op)
    client.get("/api/orders/", **bearer(token))
    with django_assert_num_queries(1):
        assert client.get("/api/orders/", **bearer(token)).status_code == 200


def test_queries_per_request_user_with_delegation(db, op, client, django_assert_num_queries):
    source = make_api_source(op, bearer_delegation=True)
    grant(link_user(source), "shop.manage_orders")
    warm(client, op)
    # The identity, then the user's own and group permissions for the intersection.
    with django_assert_num_queries(3):
        assert client.get("/api/orders/", **bearer(mint_at(op))).status_code == 200


# ---- the cache of checked tokens (issue point 8) -----------------------------------------------
def test_repeated_token_costs_no_signature_check(db, op, api, client, decode_calls):
    token = mint_at(op, service_claims(op))
    for _ in range(20):
        assert client.get("/deco/any/", **bearer(token)).status_code == 200
    assert decode_calls == ["sso.bearer"]
    assert token_cache.size() == 1


def test_cache_is_keyed_by_hash_and_bounded(db, op, api, client, settings, decode_calls):
    settings.DJANGO_SSO_BEARER_CACHE_SIZE = 2
    tokens = [mint_at(op, service_claims(op)) for _ in range(3)]
    for token in tokens:
        client.get("/deco/any/", **bearer(token))
    assert token_cache.size() == 2
    assert set(token_cache._entries) == {token_cache.digest(t) for t in tokens[1:]}
    client.get("/deco/any/", **bearer(tokens[0]))  # evicted: checked again
    assert len(decode_calls) == 4


def test_cache_entries_die_with_a_source_change(db, op, api, client, decode_calls):
    token = mint_at(op, service_claims(op))
    client.get("/deco/any/", **bearer(token))
    api.bearer_require_at_jwt = True
    api.save()
    client.get("/deco/any/", **bearer(token))
    assert len(decode_calls) == 2
    api.bearer_audiences = "https://another-api.example"
    api.save()
    assert_refused(client.get("/deco/any/", **bearer(token)), 401, "invalid_token", token)
    api.delete()
    assert_refused(client.get("/deco/any/", **bearer(token)), 401, "invalid_token", token)


def test_cache_entries_die_with_a_new_key_set(db, op, api, client, decode_calls, monkeypatch):
    from django_sso.internal import jwks

    token = mint_at(op, service_claims(op))
    client.get("/deco/any/", **bearer(token))
    client.get("/deco/any/", **bearer(token))
    assert len(decode_calls) == 1
    state = jwks._state(api)
    state.replace(
        list(state.keys) + jwks.parse_jwks({"keys": [op.keys[0].public_jwk() | {"kid": "new"}]}), time.time()
    )
    client.get("/deco/any/", **bearer(token))
    assert len(decode_calls) == 2


def test_expired_entries_are_not_used(db, op, api, client, decode_calls):
    import time_machine

    now = time.time()
    token = mint_at(op, service_claims(op, iat=int(now), exp=int(now) + 10))
    with time_machine.travel(now, tick=False) as traveller:
        client.get("/deco/any/", **bearer(token))
        traveller.move_to(now + 11)
        client.get("/deco/any/", **bearer(token))
    assert len(decode_calls) == 2


# ---- the source map -----------------------------------------------------------------------------
def test_source_map_needs_no_query_and_follows_changes(
    db, op, api, client, settings, django_assert_num_queries
):
    warm(client, op)
    with django_assert_num_queries(0):
        assert source_map.current().by_issuer[op.issuer] is source_map.current().by_pk[api.pk]
    # A change saved elsewhere (no signal here) is seen after SOURCE_CACHE_SECONDS.
    Source.objects.filter(pk=api.pk).update(enabled=False)
    token = mint_at(op, service_claims(op))
    assert client.get("/deco/any/", **bearer(token)).status_code == 200
    settings.DJANGO_SSO_SOURCE_CACHE_SECONDS = 0
    assert_refused(client.get("/deco/any/", **bearer(mint_at(op, service_claims(op)))), 401, "invalid_token")


def test_unchanged_sources_keep_their_objects_across_rebuilds(db, op, attacker_op, api):
    other = make_api_source(attacker_op, "attacker")
    before = source_map.current()
    other.bearer_require_at_jwt = True
    other.save()
    after = source_map.current()
    assert after.by_pk[api.pk] is before.by_pk[api.pk]
    assert after.by_pk[other.pk] is not before.by_pk[other.pk]


def test_sources_without_audience_or_disabled_are_not_trusted(db, op, client):
    source = make_api_source(op, bearer_audiences="")
    link_user(source)
    token = mint_at(op)
    assert_refused(client.get("/deco/any/", **bearer(token)), 401, "invalid_token", token)
    source.bearer_audiences = API
    source.enabled = False
    source.save()
    assert_refused(client.get("/deco/any/", **bearer(token)), 401, "invalid_token", token)


# ---- opaque tokens (issue point 2) -------------------------------------------------------------
def _userinfo_source(op: FakeOP) -> Source:
    source = make_api_source(op, bearer_opaque_tokens="userinfo")
    link_user(source)
    op.access_tokens = {"opaque-alice-token": "alice"}
    return source


def test_opaque_token_through_userinfo(db, op, client):
    _userinfo_source(op)
    for _ in range(5):
        response = client.get("/plain/whoami/", **bearer("opaque-alice-token"))
        assert response.json()["username"] == "alice"
    calls = [r for r in op.requests if r.path.endswith("/userinfo")]
    assert len(calls) == 1 and calls[0].headers["Authorization"] == "Bearer opaque-alice-token"
    # UserInfo refuses the token: 401; cached too.
    for _ in range(3):
        assert_refused(client.get("/deco/any/", **bearer("unknown-token")), 401, "invalid_token")
    assert len([r for r in op.requests if r.path.endswith("/userinfo")]) == 2


def test_opaque_token_with_dots_is_still_opaque(db, op, client):
    _userinfo_source(op)
    op.access_tokens["ya29.a0AfH6SM.opaque-part"] = "alice"  # Google-style: dots, not a JWT
    assert client.get("/deco/any/", **bearer("ya29.a0AfH6SM.opaque-part")).status_code == 200


def test_opaque_answers_are_shared_through_djangos_cache(db, op, client):
    _userinfo_source(op)
    client.get("/deco/any/", **bearer("opaque-alice-token"))
    token_cache.clear()  # another process: nothing in its memory
    assert client.get("/deco/any/", **bearer("opaque-alice-token")).status_code == 200
    assert len([r for r in op.requests if r.path.endswith("/userinfo")]) == 1


def test_opaque_provider_down_is_503(db, op, client):
    _userinfo_source(op)
    op.scenario["respond"] = {"/userinfo": (500, {"Content-Type": "text/plain"}, b"down")}
    response = client.get("/deco/any/", **bearer("opaque-alice-token"))
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "WWW-Authenticate" not in response


def test_opaque_tokens_refused_without_an_opaque_source(db, op, api, client, network):
    assert_refused(client.get("/deco/any/", **bearer("opaque-token")), 401, "invalid_token")
    assert not op.requests and not network.collector


def test_only_one_source_may_check_opaque_tokens(db, op, attacker_op):
    first = make_api_source(op, bearer_opaque_tokens="userinfo")
    second = make_api_source(attacker_op, "attacker", bearer_opaque_tokens="userinfo")
    assert source_map.current().opaque is None, "never guess between two providers"
    data = {**_form_data(second), "bearer_opaque_tokens": "userinfo"}
    form = SourceForm(data=data, instance=second)
    assert not form.is_valid() and "bearer_opaque_tokens" in form.errors
    second.delete()
    assert source_map.current().opaque == first


def _form_data(source: Source) -> dict[str, Any]:
    from django.forms.models import model_to_dict

    data = model_to_dict(source, exclude=["id", "provider_metadata", "last_discovery_at"])
    data["extra_authorize_params"] = "{}"
    data["jwks"] = ""
    return {k: v for k, v in data.items() if v is not None}


# ---- entry points ------------------------------------------------------------------------------
def test_decorator_scopes_and_permissions(db, op, api, client):
    link_user(api)
    one = mint_at(op, access_claims(op, scope="app:read"))
    params = assert_refused(client.get("/deco/scopes/", **bearer(one)), 403, "insufficient_scope", one)
    assert params["scope"] == "app:read app:write"
    assert (
        client.get(
            "/deco/scopes/", **bearer(mint_at(op, access_claims(op, scope="app:write app:read")))
        ).status_code
        == 200
    )
    half = mint_at(op, access_claims(op, scope="app:manage_orders"))
    params = assert_refused(client.get("/deco/permissions/", **bearer(half)), 403, "insufficient_scope", half)
    assert params["scope"] == "app:manage_orders app:manage_users"
    both = mint_at(op, access_claims(op, scope="app:manage_orders app:manage_users"))
    assert client.get("/deco/permissions/", **bearer(both)).status_code == 200


def test_decorator_on_an_async_view(db, op, api, async_client):
    from asgiref.sync import async_to_sync

    link_user(api)
    get = async_to_sync(async_client.get)
    response = get("/deco/async/", headers={"Authorization": f"Bearer {mint_at(op)}"})
    assert response.json() == {"async": True, "username": "alice"}
    lacking = mint_at(op, access_claims(op, scope="openid"))
    assert get("/deco/async/", headers={"Authorization": f"Bearer {lacking}"}).status_code == 403
    assert get("/deco/async/").status_code == 401


def test_decorator_without_the_middleware_and_without_csrf(db, op, api, client, settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "BearerTokenMiddleware" not in m]
    csrf_client = type(client)(enforce_csrf_checks=True)
    token = mint_at(op, service_claims(op))
    assert csrf_client.post("/deco/any/", **bearer(token)).status_code == 200
    assert_refused(csrf_client.post("/deco/any/"), 401, None)
    assert_refused(csrf_client.get("/deco/any/", **bearer("bad")), 401, "invalid_token")


def test_a_session_does_not_pass_the_decorator(db, op, api, client):
    user = link_user(api)
    client.force_login(user)
    assert client.get("/plain/whoami/").json()["username"] == "alice"
    assert_refused(client.get("/deco/any/"), 401, None)
    # With a token, the token decides, not the session.
    service = mint_at(op, service_claims(op))
    assert client.get("/plain/whoami/", **bearer(service)).json()["username"] == "service:honest:svc-client"


def test_www_authenticate_and_body_per_error():
    assert bearer_module.www_authenticate(MissingToken()) == 'Bearer realm="api"'
    assert bearer_module.www_authenticate(InvalidToken("sso.bearer.expired")) == (
        'Bearer realm="api", error="invalid_token", error_description="The access token expired."'
    )
    assert bearer_module.www_authenticate(InsufficientScope(scopes=("a", "b"))).endswith('scope="a b"')
    assert bearer_module.error_response(InvalidRequest()).status_code == 400
    unavailable = bearer_module.error_response(BearerUnavailable("sso.jwks.unavailable"))
    assert unavailable.status_code == 503 and "WWW-Authenticate" not in unavailable
    for text in bearer_module.DESCRIPTIONS.values():
        assert '"' not in text and "\\" not in text and text.isascii()


def test_realm_setting(db, op, api, client, settings):
    settings.DJANGO_SSO_BEARER_REALM = "orders-api"
    assert client.get("/deco/any/")["WWW-Authenticate"] == 'Bearer realm="orders-api"'


def test_jwks_unreachable_is_503_not_401(db, op, api, client):
    op.scenario["respond"] = {"/jwks": (500, {"Content-Type": "text/plain"}, b"down")}
    response = client.get("/deco/any/", **bearer(mint_at(op, service_claims(op))))
    assert response.status_code == 503
    assert (
        response.json()
        == {
            "error": "temporarily_unavailable",
            "error_description": "The access token cannot be checked right now.",
        }
        or response.json()["error"] == "temporarily_unavailable"
    )


def test_the_token_never_reaches_a_log(db, op, api, client, caplog):
    caplog.set_level("DEBUG")
    link_user(api)
    tokens = [
        mint_at(op),
        mint_at(op, access_claims(op, exp=int(time.time()) - 1000, iat=int(time.time()) - 2000)),
        mint_at(op, access_claims(op, aud="x")),
        mint_at(op, header={"kid": "unknown"}),
        "opaque.token.value",
    ]
    for token in tokens:
        client.get("/deco/any/", **bearer(token))
        client.get("/deco/any/", HTTP_AUTHORIZATION=f"Bearer {token} x")
        client.get(f"/deco/any/?access_token={token}", **bearer(token))
    for token in tokens:
        assert token not in caplog.text
        assert token.split(".")[-1] not in caplog.text


# ---- configuration ---------------------------------------------------------------------------
def test_command_bearer_options(db, op, network):
    out = io.StringIO()
    call_command(
        "sso_source", "create", "--slug", "api", "--name", "API", "--issuer", op.issuer,
        "--authorization-url", op.url("/authorize"), "--token-url", op.url("/token"),
        "--jwks-url", op.url("/jwks"), "--client-id", "app", "--client-secret", "s3cret",
        "--bearer-audience", API, "--bearer-audience", "api://orders", "--bearer-require-at-jwt",
        "--permission-prefix", "app:", stdout=out,
    )  # fmt: skip
    source = Source.objects.get(slug="api")
    assert source.bearer_audience_list == [API, "api://orders"]
    assert source.bearer_require_at_jwt is True and source.accepts_bearer_tokens
    assert source.permission_prefix == "app:" and source.bearer_service_rule == "client_id"
    call_command(
        "sso_source", "update", "api", "--no-bearer-require-at-jwt", "--bearer-audience", "x", stdout=out
    )
    source.refresh_from_db()
    assert source.bearer_audience_list == ["x"] and source.bearer_require_at_jwt is False
    call_command("sso_source", "update", "api", "--no-bearer", stdout=out)
    source.refresh_from_db()
    assert not source.accepts_bearer_tokens
    with pytest.raises(CommandError, match="introspection_url"):
        call_command(
            "sso_source", "update", "api", "--bearer-audience", "x", "--bearer-opaque-tokens", "introspection"
        )


def test_form_needs_keys_for_bearer_tokens(db):
    form = SourceForm(
        data={
            "name": "X", "slug": "x", "protocol": "oauth2", "client_id": "c", "display_order": 0,
            "authorization_url": "https://x.example/a", "token_url": "https://x.example/t",
            "userinfo_url": "https://x.example/u", "token_endpoint_auth_method": "client_secret_basic",
            "signing_algorithms": "RS256", "extra_authorize_params": "{}", "bearer_audiences": API,
            "bearer_scope_claims": "scope scp[] bad[x]",
        }
    )  # fmt: skip
    assert not form.is_valid()
    assert "Bearer tokens need the issuer" in str(form.errors["bearer_audiences"])
    assert "JWKS" in str(form.errors["bearer_audiences"])
    assert "bad[x]" in str(form.errors["bearer_scope_claims"])


def test_check_middleware_order(settings):
    middleware = list(settings.MIDDLEWARE)
    middleware.remove("django_sso.middleware.BearerTokenMiddleware")
    index = middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware")
    settings.MIDDLEWARE = [
        *middleware[:index],
        "django_sso.middleware.BearerTokenMiddleware",
        *middleware[index:],
    ]
    assert "django_sso.E006" in [m.id for m in run_checks()]
    settings.MIDDLEWARE = middleware
    assert "django_sso.E006" not in [m.id for m in run_checks()]
