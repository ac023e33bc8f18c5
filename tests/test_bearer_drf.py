"""Django REST framework: ``BearerTokenAuthentication`` and ``HasScopes`` (``django_sso.contrib.drf``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bearer_support import (
    _fresh_bearer_memory,  # noqa: F401  (autouse)
    access_claims,
    bearer,
    grant,
    link_user,
    make_api_source,
    mint_at,
    service_claims,
)
from tests.bearer_support import assert_refused as refused
from tests.fakeop import FakeOP

pytestmark = pytest.mark.urls("tests.bearer_urls")


def assert_refused(response: Any, status: int, error: str | None, token: str | None = None) -> dict[str, str]:
    """As ``bearer_support.assert_refused``; the middleware answers no-store, DRF does not."""
    return refused(response, status, error, token, no_store=False)


@pytest.fixture
def api(db: Any, op: FakeOP) -> Any:
    return make_api_source(op)


@pytest.fixture(params=["with-middleware", "without-middleware"])
def middleware(request: Any, settings: Any) -> str:
    if request.param == "without-middleware":
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "BearerTokenMiddleware" not in m]
    return request.param


def test_drf_authenticates_users_and_services(api, op, client, middleware):
    link_user(api)
    user = client.get("/drf/whoami/", **bearer(mint_at(op))).json()
    assert user == {"username": "alice", "service": False, "scopes": ["app:manage_orders", "openid"]}
    service = client.get("/drf/whoami/", **bearer(mint_at(op, service_claims(op, scope="app:x")))).json()
    assert service == {"username": "service:honest:svc-client", "service": True, "scopes": ["app:x"]}


def test_drf_refusals_are_rfc6750(api, op, client, middleware):
    assert_refused(client.get("/drf/whoami/"), 401, None)
    token = mint_at(op, access_claims(op, aud="https://other.example"))
    assert_refused(client.get("/drf/whoami/", **bearer(token)), 401, "invalid_token", token)
    assert_refused(client.get("/drf/whoami/", HTTP_AUTHORIZATION="Bearer a b"), 400, "invalid_request")


def test_drf_has_scopes(api, op, client, middleware):
    link_user(api)
    assert client.get("/drf/scoped/", **bearer(mint_at(op))).json() == {"ok": True}
    lacking = mint_at(op, access_claims(op, scope="openid"))
    params = assert_refused(client.get("/drf/scoped/", **bearer(lacking)), 403, "insufficient_scope", lacking)
    assert params["scope"] == "app:manage_orders"
    assert_refused(client.get("/drf/scoped/"), 401, None)


def test_drf_required_permissions(api, op, client, middleware):
    assert client.get("/drf/permissions/", **bearer(mint_at(op, service_claims(op)))).status_code == 200
    lacking = mint_at(op, service_claims(op, scope="openid"))
    params = assert_refused(client.get("/drf/permissions/", **bearer(lacking)), 403, "insufficient_scope")
    assert params["scope"] == "app:manage_orders"


def test_drf_model_permissions_see_the_token_grants(op, client, db, middleware):
    source = make_api_source(op, bearer_delegation=True)
    user = link_user(source)
    token = mint_at(op, access_claims(op, scope="app:add_order"))
    assert client.get("/drf/orders/", **bearer(token)).status_code == 200  # GET needs no permission
    assert client.post("/drf/orders/", **bearer(token)).status_code == 403  # delegation: user lacks it
    grant(user, "shop.add_order")
    assert client.post("/drf/orders/", **bearer(token)).status_code == 201
    assert (
        client.post("/drf/orders/", **bearer(mint_at(op, access_claims(op, scope="openid")))).status_code
        == 403
    )


def test_drf_provider_unavailable_is_503(api, op, client, middleware):
    op.scenario["respond"] = {"/jwks": (500, {"Content-Type": "text/plain"}, b"down")}
    response = client.get("/drf/whoami/", **bearer(mint_at(op, service_claims(op))))
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
