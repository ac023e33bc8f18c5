"""Presets: each one's generated configuration against its provider's published discovery shape.

Every recorded document in tests/data/discovery/ is served (in process) at the URL the preset
computes, and the source is created the way an operator does it: the admin's "Add from preset"
page, or ``sso_source create --preset``. Then the quirks each preset exists for: Google's ``hd``
on the token, Okta's custom authorization server issuer, Auth0's ``audience``, Keycloak's role
claims. Entra's multi-tenant issuer rule has its own file (test_cases_entra.py).
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from django_sso import presets
from django_sso.models import Source
from django_sso.presets import Option, Preset
from tests.conftest import make_source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET, DROP, FakeOP, _json
from tests.rejections import assert_rejected, query_of

DATA = Path(__file__).parent / "data" / "discovery"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
CHOOSE = "/admin/django_sso/source/add-from-preset/"
MS = "https://login.microsoftonline.com"

#: case -> (preset, options, recorded document, the well-known URL the preset must compute)
CASES: dict[str, tuple[str, dict[str, str], str, str]] = {
    "google": ("google", {}, "google.json", "https://accounts.google.com/.well-known/openid-configuration"),
    "google workspace": (
        "google",
        {"hosted_domain": "Example.com"},
        "google.json",
        "https://accounts.google.com/.well-known/openid-configuration",
    ),
    "entra common": (
        "entra",
        {"tenant": "common", "allowed_tenants": TENANT},
        "entra-common.json",
        f"{MS}/common/v2.0/.well-known/openid-configuration",
    ),
    "entra organizations": (
        "entra",
        {"tenant": "organizations", "allowed_tenants": "*"},
        "entra-organizations.json",
        f"{MS}/organizations/v2.0/.well-known/openid-configuration",
    ),
    "entra tenant by id": (
        "entra",
        {"tenant": TENANT},
        "entra-tenant.json",
        f"{MS}/{TENANT}/v2.0/.well-known/openid-configuration",
    ),
    "entra tenant by domain": (
        "entra",
        {"tenant": "Contoso.onmicrosoft.com"},
        "entra-tenant.json",
        f"{MS}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
    ),
    "okta org server": (
        "okta",
        {"domain": "example.okta.com"},
        "okta-org.json",
        "https://example.okta.com/.well-known/openid-configuration",
    ),
    "okta custom server": (
        "okta",
        {"domain": "https://Example.okta.com/", "authorization_server": "default"},
        "okta-default.json",
        "https://example.okta.com/oauth2/default/.well-known/openid-configuration",
    ),
    "auth0": (
        "auth0",
        {"domain": "example.us.auth0.com", "audience": "https://api.example.com"},
        "auth0.json",
        "https://example.us.auth0.com/.well-known/openid-configuration",
    ),
    "keycloak": (
        "keycloak",
        {"base_url": "https://sso.example.com/", "realm": "acme"},
        "keycloak.json",
        "https://sso.example.com/realms/acme/.well-known/openid-configuration",
    ),
    "salesforce": (
        "salesforce",
        {},
        "salesforce.json",
        "https://login.salesforce.com/.well-known/openid-configuration",
    ),
    "ibm verify": (
        "oidc",
        {"issuer": "https://acme.verify.ibm.com/oidc/endpoint/default"},
        "ibm-verify.json",
        "https://acme.verify.ibm.com/oidc/endpoint/default/.well-known/openid-configuration",
    ),
    "forgerock": (
        "oidc",
        {"issuer": "https://openam-acme.forgeblocks.com/am/oauth2/realms/root/realms/alpha"},
        "forgerock.json",
        "https://openam-acme.forgeblocks.com/am/oauth2/realms/root/realms/alpha/.well-known/openid-configuration",
    ),
}


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def serve(network: Any, url: str, document: Any) -> FakeOP:
    """Answer ``url`` with ``document`` on the fake network; return the host's recorder."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    host = next((op for op in network.ops if op.base == origin), None)
    if host is None:
        host = FakeOP(origin)
        network.ops.append(host)
    host.scenario.setdefault("respond", {})[parts.path] = _json(document)
    return host


def preset_post(options: dict[str, str], **common: str) -> dict[str, str]:
    data = {"name": "Provider", "slug": "provider", "client_id": "the-client", "client_secret": "the-secret"}
    data.update(common)
    data.update({f"option_{k}": v for k, v in options.items()})
    return data


def add_from_preset(admin_client: Any, name: str, options: dict[str, str], **common: str) -> Any:
    return admin_client.post(f"{CHOOSE}{name}/", preset_post(options, **common))


# ---- each preset against its recorded discovery document ------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_preset_configuration_fits_the_published_discovery_document(admin_client, network, case):
    name, options, document_name, well_known = CASES[case]
    document = recorded(document_name)
    host = serve(network, well_known, document)
    response = add_from_preset(admin_client, name, options)
    assert response.status_code == 302, response.context["form"].errors
    source = Source.objects.get()
    assert response["Location"] == f"/admin/django_sso/source/{source.pk}/change/"
    assert [r.url for r in host.requests] == [well_known]

    preset = presets.get(name)
    assert source.preset == name
    assert source.button_icon == preset.icon
    assert source.protocol == "oidc"
    assert source.well_known_url == well_known
    # The discovery rule held: the stored issuer is the document's, byte for byte.
    assert source.issuer == document["issuer"]
    assert source.authorization_url == document["authorization_endpoint"]
    assert source.token_url == document["token_endpoint"]
    assert source.jwks_url == document["jwks_uri"]
    assert source.userinfo_url == document.get("userinfo_endpoint", "")
    assert source.end_session_url == document.get("end_session_endpoint", "")
    assert source.iss_parameter_supported is (
        document.get("authorization_response_iss_parameter_supported") is True
    )
    assert source.provider_metadata == document

    # What the site will ask for is something the provider says it does.
    assert "code" in document["response_types_supported"]
    assert set(source.scope_list) <= set(document.get("scopes_supported", source.scope_list))
    assert set(source.algorithm_list) <= set(document["id_token_signing_alg_values_supported"])
    assert source.token_endpoint_auth_method in document["token_endpoint_auth_methods_supported"]
    assert source.use_pkce
    if "code_challenge_methods_supported" in document:
        assert "S256" in document["code_challenge_methods_supported"]
    assert source.client_id == "the-client"
    assert source.client_secret == "the-secret"


def test_the_cleaned_answers_are_stored_with_the_source(admin_client, network):
    _, options, document, url = CASES["okta custom server"]
    serve(network, url, recorded(document))
    add_from_preset(admin_client, "okta", options)
    source = Source.objects.get()
    assert source.preset_options == {"domain": "example.okta.com", "authorization_server": "default"}
    assert source.scopes == "openid email profile"
    assert source.label == "Sign in with Okta"
    assert source.groups_claim == "groups"


def test_google_workspace_fills_the_hosted_domain(admin_client, network):
    _, options, document, url = CASES["google workspace"]
    serve(network, url, recorded(document))
    add_from_preset(admin_client, "google", options)
    assert Source.objects.get().hosted_domain == "example.com"


def test_entra_multi_tenant_keeps_the_template_and_the_allow_list(admin_client, network):
    _, options, document, url = CASES["entra common"]
    serve(network, url, recorded(document))
    add_from_preset(admin_client, "entra", options)
    source = Source.objects.get()
    assert source.issuer == f"{MS}/{{tenantid}}/v2.0"
    assert source.tenant_list == [TENANT]
    assert source.fetch_userinfo is False
    assert source.label == "Sign in with Microsoft"


def test_auth0_sends_the_audience(admin_client, network):
    _, options, document, url = CASES["auth0"]
    serve(network, url, recorded(document))
    add_from_preset(admin_client, "auth0", options)
    source = Source.objects.get()
    assert source.issuer == "https://example.us.auth0.com/"
    assert source.extra_authorize_params == {"audience": "https://api.example.com"}
    # RBAC permissions are in the JWT access token for that API.
    assert source.permission_claim == "permissions"
    assert source.access_token_audience == "https://api.example.com"


@pytest.mark.parametrize(
    ("name", "options", "document", "url", "field", "message"),
    [
        (
            "entra",
            {"tenant": "common"},
            "entra-common.json",
            f"{MS}/common/v2.0/.well-known/openid-configuration",
            "option_allowed_tenants",
            "tenants allowed",
        ),
        (
            "oidc",
            {"issuer": f"{MS}/common/v2.0"},
            "entra-common.json",
            f"{MS}/common/v2.0/.well-known/openid-configuration",
            None,
            "issuer mismatch",
        ),
        (
            "oidc",
            {"issuer": f"{MS}/{{tenantid}}/v2.0"},
            "entra-common.json",
            f"{MS}/{{tenantid}}/v2.0/.well-known/openid-configuration",
            "option_issuer",
            "never a wildcard",
        ),
        (
            "okta",
            {"domain": "example.okta.com"},
            "okta-default.json",
            "https://example.okta.com/.well-known/openid-configuration",
            None,
            "issuer mismatch",
        ),
        (
            "okta",
            {"domain": "example.okta.com/oauth2/default"},
            "okta-default.json",
            "https://example.okta.com/.well-known/openid-configuration",
            "option_domain",
            "host name",
        ),
        (
            "keycloak",
            {"base_url": "http://sso.example.com", "realm": "acme"},
            "keycloak.json",
            "https://sso.example.com/realms/acme/.well-known/openid-configuration",
            "option_base_url",
            "https",
        ),
    ],
    ids=[
        "entra common without tenants",
        "generic oidc at entra common",
        "generic oidc with a template issuer",
        "okta org url serving a custom server",
        "okta domain with a path",
        "keycloak over http",
    ],
)
def test_a_wrong_answer_is_a_form_error_and_saves_nothing(
    admin_client, network, name, options, document, url, field, message
):
    serve(network, url, recorded(document))
    response = add_from_preset(admin_client, name, options)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors.get(field or "__all__", [])).lower(), errors
    assert not Source.objects.exists()


def test_the_chooser_lists_every_preset(admin_client):
    response = admin_client.get(CHOOSE)
    assert response.status_code == 200
    html = response.content.decode()
    for name, label in presets.choices():
        assert f'href="{CHOOSE}{name}/"' in html
        assert label in html
    changelist = admin_client.get("/admin/django_sso/source/").content.decode()
    assert f'href="{CHOOSE}"' in changelist


def test_the_preset_page_asks_only_what_the_preset_needs(admin_client):
    form = admin_client.get(f"{CHOOSE}keycloak/").context["form"]
    assert list(form.fields) == [
        "name",
        "slug",
        "client_id",
        "client_secret",
        "option_base_url",
        "option_realm",
        "option_roles",
    ]
    assert form["name"].initial == "Keycloak"
    github = admin_client.get(f"{CHOOSE}github/").context["form"]
    assert list(github.fields) == ["name", "slug", "client_id", "client_secret", "option_host"]


def test_the_preset_pages_need_the_add_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(CHOOSE).status_code == 403
    assert client.get(f"{CHOOSE}google/").status_code == 403
    assert client.get("/admin/django_sso/source/add-from-preset/nope/").status_code == 403


def test_an_unknown_preset_is_404(admin_client):
    assert admin_client.get(f"{CHOOSE}nope/").status_code == 404


def test_the_secret_is_not_echoed_back(admin_client):
    response = add_from_preset(admin_client, "okta", {"domain": "not a host"}, client_secret="s3cret-value")
    assert response.status_code == 200
    assert b"s3cret-value" not in response.content


# ---- presets without discovery, the registry ------------------------------------------------


def test_github_is_plain_oauth2_with_the_emails_url():
    values = presets.get("github").source_values({"host": ""}, client_id="c")
    assert values["protocol"] == "oauth2"
    assert values["authorization_url"] == "https://github.com/login/oauth/authorize"
    assert values["token_url"] == "https://github.com/login/oauth/access_token"
    assert values["userinfo_url"] == "https://api.github.com/user"
    assert values["emails_url"] == "https://api.github.com/user/emails"
    assert values["profile_subject_field"] == "id"
    assert values["scopes"] == "read:user user:email"


def test_github_enterprise_server_uses_its_api_path():
    preset = presets.get("github")
    values = preset.source_values(preset.clean_options({"host": "https://github.example.com"}))
    assert values["authorization_url"] == "https://github.example.com/login/oauth/authorize"
    assert values["userinfo_url"] == "https://github.example.com/api/v3/user"


def test_role_claims_say_where_each_provider_puts_roles():
    keycloak = presets.get("keycloak")
    assert (
        keycloak.role_claims({"roles": "realm", "client_id": "shop"})["permission_claim"]
        == "realm_access.roles"
    )
    assert keycloak.role_claims({"roles": "client", "client_id": "shop"})["permission_claim"] == (
        "resource_access.shop.roles"
    )
    assert presets.get("entra").role_claims({}) == {"permission_claim": "roles", "groups_claim": "groups"}
    assert presets.get("okta").role_claims({}) == {"groups_claim": "groups"}
    assert presets.get("auth0").role_claims({"audience": "https://api"}) == {
        "permission_claim": "permissions",
        "access_token_audience": "https://api",
    }
    assert presets.get("auth0").role_claims({"audience": ""}) == {}


def test_role_claims_fill_only_fields_the_source_has():
    fields = {f.name for f in Source._meta.get_fields()}
    values = presets.get("entra").source_values({"tenant": TENANT, "allowed_tenants": ""}, client_id="c")
    for name, value in presets.get("entra").role_claims({}).items():
        assert (values.get(name) == value) if name in fields else name not in values


@pytest.mark.parametrize(
    ("name", "raw", "errors"),
    [
        ("okta", {}, {"domain"}),
        (
            "okta",
            {"domain": "example.okta.com", "authorization_server": "aus/../x"},
            {"authorization_server"},
        ),
        ("okta", {"domain": "example.okta.com", "colour": "blue"}, {"colour"}),
        ("entra", {"tenant": "not a tenant!"}, {"tenant"}),
        ("entra", {"tenant": TENANT, "allowed_tenants": "contoso.com"}, {"allowed_tenants"}),
        ("keycloak", {"base_url": "https://sso.example.com", "realm": "a/b"}, {"realm"}),
        ("keycloak", {"base_url": "https://sso.example.com", "realm": "a", "roles": "all"}, {"roles"}),
        ("google", {"hosted_domain": "not a domain"}, {"hosted_domain"}),
    ],
)
def test_option_validation(name, raw, errors):
    with pytest.raises(ValidationError) as caught:
        presets.get(name).clean_options(raw)
    assert set(caught.value.message_dict) == errors


def test_a_site_can_register_its_own_preset(admin_client, network):
    serve(
        network,
        "https://id.example.org/.well-known/openid-configuration",
        recorded("google.json")
        | {
            "issuer": "https://id.example.org",
        },
    )

    def fill(answers: dict[str, str]) -> dict[str, Any]:
        return {
            "well_known_url": "https://id.example.org/.well-known/openid-configuration",
            "scopes": "openid",
        }

    preset = presets.register(Preset(name="house", label="House IdP", icon="house", fill=fill))
    try:
        assert ("house", "House IdP") in presets.choices()
        response = add_from_preset(admin_client, "house", {})
        assert response.status_code == 302, response.context["form"].errors
        assert Source.objects.get().preset == preset.name
    finally:
        presets.PRESETS.pop("house")


# ---- the command ----------------------------------------------------------------------------


def sso_source(*args: str) -> str:
    out = StringIO()
    call_command("sso_source", *args, stdout=out)
    return out.getvalue()


def test_command_creates_from_a_preset(db, network):
    _, _, document, url = CASES["okta custom server"]
    serve(network, url, recorded(document))
    out = sso_source(
        "create",
        "--slug",
        "okta",
        "--preset",
        "okta",
        "--preset-option",
        "domain=example.okta.com",
        "--preset-option",
        "authorization_server=default",
        "--client-id",
        "0oa-client",
        "--client-secret",
        "secret",
        "--allowed-email-domains",
        "example.com",
    )
    assert out == "saved okta: oidc issuer https://example.okta.com/oauth2/default\n"
    source = Source.objects.get()
    assert (source.name, source.preset, source.client_secret) == ("Okta", "okta", "secret")
    assert source.allowed_email_domains == "example.com"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--preset-option", "colour=blue"], "preset option colour: Unknown option."),
        ([], "preset option domain: This option is required."),
        (["--preset-option", "domain"], "--preset-option takes KEY=VALUE, got 'domain'"),
    ],
)
def test_command_preset_errors_are_one_line(db, options, reason):
    with pytest.raises(CommandError) as caught:
        sso_source("create", "--slug", "okta", "--preset", "okta", "--client-id", "c", *options)
    assert str(caught.value) == reason
    assert not Source.objects.exists()


def test_command_lists_the_presets(db):
    lines = sso_source("presets").splitlines()
    assert [line.split("\t")[0] for line in lines] == [name for name, _ in presets.choices()]
    assert "okta\tOkta\tdomain authorization_server?" in lines
    assert "salesforce\tSalesforce\tdomain?=login.salesforce.com" in lines


# ---- quirks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hd", ["example.com", "EXAMPLE.com"])
def test_google_hd_on_the_token_is_accepted(db, op, client, sign_in, hd):
    make_source(op, "honest", hosted_domain="example.com")
    op.scenario["id_token"] = {"hd": hd}
    result = sign_in()
    assert result.response.status_code == 303
    # The parameter only preselects Google's account chooser.
    assert result.authorize_params["hd"] == "example.com"


@pytest.mark.parametrize(
    "token_hd",
    [DROP, "other.com", "example.com.evil.com", ["example.com"], ""],
    ids=["consumer account", "other domain", "suffix", "list", "empty"],
)
def test_google_hd_is_checked_on_the_token(db, op, client, sign_in, sso_log, token_hd):
    make_source(op, "honest", hosted_domain="example.com")
    op.scenario["id_token"] = {"hd": token_hd}
    # UserInfo saying the right domain changes nothing: the token decides.
    op.scenario["userinfo"] = {"hd": "example.com"}
    result = sign_in()
    assert_rejected(
        result.response, client, sso_log, status=400, code="sso.id_token.hd_mismatch", ops=[op], token_calls=1
    )


def test_google_hd_with_several_domains_sends_none(db, op, client, sign_in):
    make_source(op, "honest", hosted_domain="example.com example.org")
    op.scenario["id_token"] = {"hd": "example.org"}
    result = sign_in()
    assert result.response.status_code == 303
    assert "hd" not in result.authorize_params


@pytest.fixture
def okta_default(network):
    provider = FakeOP("https://example.okta.com/oauth2/default")
    network.ops.append(provider)
    return provider


def okta_source(admin_client: Any, server: str = "default") -> Source:
    response = add_from_preset(
        admin_client,
        "okta",
        {"domain": "example.okta.com", "authorization_server": server},
        slug="honest",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    assert response.status_code == 302, response.context["form"].errors
    return Source.objects.get()


def test_okta_custom_server_signs_in_with_its_own_issuer(admin_client, client, okta_default, sign_in):
    source = okta_source(admin_client)
    assert source.issuer == "https://example.okta.com/oauth2/default"
    result = sign_in(provider=okta_default)
    assert result.response.status_code == 303, result.response.content


def test_okta_org_server_tokens_are_refused_by_a_custom_server_source(
    admin_client, client, okta_default, sign_in, sso_log
):
    okta_source(admin_client)
    okta_default.scenario["id_token"] = {"iss": "https://example.okta.com"}
    result = sign_in(provider=okta_default)
    assert_rejected(
        result.response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.iss_mismatch",
        ops=[okta_default],
        token_calls=1,
    )


@pytest.fixture
def auth0(network):
    provider = FakeOP("https://example.us.auth0.com")
    issuer = provider.base + "/"
    provider.scenario["discovery"] = {
        "issuer": issuer,
        "authorization_response_iss_parameter_supported": False,
    }
    provider.scenario["authorize"] = {"iss": None}
    provider.scenario["id_token"] = {"iss": issuer}
    network.ops.append(provider)
    return provider


def test_auth0_audience_gets_a_jwt_access_token(admin_client, client, auth0, sign_in):
    response = add_from_preset(
        admin_client,
        "auth0",
        {"domain": "example.us.auth0.com", "audience": "https://api.example.com"},
        slug="honest",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    assert response.status_code == 302, response.context["form"].errors
    # With an audience, Auth0's access token is a JWT for that API (and for its UserInfo).
    access_token = auth0.mint(
        {
            "iss": auth0.base + "/",
            "aud": ["https://api.example.com", auth0.base + "/userinfo"],
            "sub": "alice-sub",
            "permissions": ["read:orders"],
        },
        header={"typ": "at+jwt"},
    )
    auth0.scenario["token"] = {"access_token": access_token}
    auth0.access_tokens = {access_token: "alice"}
    result = sign_in(provider=auth0)
    assert result.authorize_params["audience"] == "https://api.example.com"
    assert result.response.status_code == 303, result.response.content


def test_auth0_audience_per_request_overrides_the_configured_one(admin_client, client, auth0):
    add_from_preset(
        admin_client,
        "auth0",
        {"domain": "example.us.auth0.com", "audience": "https://api.example.com"},
        slug="honest",
    )
    location = client.post("/sso/honest/login/", {"audience": "https://billing.example.com"})["Location"]
    assert query_of(location)["audience"] == "https://billing.example.com"
    assert Source.objects.get().extra_authorize_params == {"audience": "https://api.example.com"}


def test_keycloak_client_roles_name_the_client(admin_client, network):
    _, options, document, url = CASES["keycloak"]
    serve(network, url, recorded(document))
    response = add_from_preset(admin_client, "keycloak", {**options, "roles": "client"}, client_id="shop")
    assert response.status_code == 302
    source = Source.objects.get()
    preset = presets.get("keycloak")
    assert preset.role_claims({**source.preset_options, "client_id": source.client_id}) == {
        "permission_claim": "resource_access.shop.roles",
        "groups_claim": "groups",
    }
    assert source.iss_parameter_supported is True


def test_option_defaults_apply():
    assert presets.get("salesforce").clean_options({}) == {"domain": "login.salesforce.com"}
    assert (
        presets.get("keycloak").clean_options({"base_url": "https://k.example.com", "realm": "r"})["roles"]
        == "realm"
    )
    assert Option("x", "X").required


# ---- where each provider puts roles, read by the role mapping -------------------------------

KEYCLOAK_ROLES = {
    "realm_access": {"roles": ["app:shop.manage_orders", "offline_access", "uma_authorization"]},
    "resource_access": {
        "shop.web": {"roles": ["app:shop.manage_users"]},
        "account": {"roles": ["app:shop.manage_orders", "manage-account"]},
    },
    "groups": ["/staff"],
}


@pytest.fixture
def keycloak(network):
    # A client id with a dot: its roles live at resource_access."shop.web".roles.
    provider = FakeOP("https://sso.example.com/realms/acme", client_id="shop.web")
    network.ops.append(provider)
    return provider


@pytest.mark.parametrize(
    ("roles", "expected"),
    [("realm", {"shop.manage_orders"}), ("client", {"shop.manage_users"})],
)
def test_keycloak_realm_or_client_roles_become_permissions(
    admin_client, client, keycloak, sign_in, django_user_model, roles, expected
):
    response = add_from_preset(
        admin_client,
        "keycloak",
        {"base_url": "https://sso.example.com", "realm": "acme", "roles": roles},
        slug="honest",
        client_id="shop.web",
        client_secret=CLIENT_SECRET,
    )
    assert response.status_code == 302, response.context["form"].errors
    source = Source.objects.get(slug="honest")
    assert source.groups_claim == "groups"
    source.permission_prefix = "app:"
    source.save()
    keycloak.scenario["id_token"] = KEYCLOAK_ROLES
    assert sign_in(provider=keycloak).response.status_code == 303
    user = django_user_model.objects.get(sso_identities__source=source)
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in user.user_permissions.all()}
    assert granted == expected


def test_entra_app_roles_and_groups_are_where_the_preset_says(
    admin_client, client, network, sign_in, django_user_model
):
    from django.contrib.auth.models import Group

    from django_sso.models import GroupMapping

    provider = FakeOP(f"{MS}/{TENANT}/v2.0")
    provider.scenario["discovery"] = {"authorization_response_iss_parameter_supported": False}
    provider.scenario["authorize"] = {"iss": None}
    provider.scenario["id_token"] = {
        "tid": TENANT,
        "roles": ["Orders.Manage"],
        "groups": ["6f0e1b2c-0000-4000-8000-000000000001"],
    }
    network.ops.append(provider)
    response = add_from_preset(
        admin_client,
        "entra",
        {"tenant": TENANT},
        slug="honest",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    assert response.status_code == 302, response.context["form"].errors
    source = Source.objects.get(slug="honest")
    assert (source.permission_claim, source.groups_claim) == ("roles", "groups")
    source.staff_values = "Orders.Manage"
    source.save()
    buyers = Group.objects.create(name="Buyers")
    GroupMapping.objects.create(source=source, value="6f0e1b2c-0000-4000-8000-000000000001", group=buyers)
    assert sign_in(provider=provider).response.status_code == 303
    user = django_user_model.objects.get(sso_identities__source=source)
    assert user.is_staff
    assert list(user.groups.all()) == [buyers]
