"""RP-CASES CFG-07: Microsoft Entra ID's multi-tenant ``{tenantid}`` issuer, with tokens signed here.

A generic OpenID Connect source never treats ``{tenantid}`` as a wildcard. A source made from the
Entra preset substitutes each token's ``tid``, requires ``iss`` to equal the result exactly, and
checks ``tid`` against the admin's allow-list; the identity key includes the tenant.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_sso.exceptions import ConfigurationError
from django_sso.forms import SourceForm
from django_sso.internal import discovery
from django_sso.models import Identity, Source
from tests.conftest import make_source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET, DROP, FakeOP
from tests.rejections import assert_rejected, with_params
from tests.test_discovery import edit_data, form_data

AUTHORITY = "https://login.microsoftonline.com"
TEMPLATE = f"{AUTHORITY}/{{tenantid}}/v2.0"
HOME = "72f988bf-86f1-41af-91ab-2d7cd011db47"
PARTNER = "5d1f9b2e-0c2a-4a8e-9d3b-7c6e2a1f0b11"
ATTACKER = "0badc0de-0000-4000-8000-00000000beef"


def tenant_issuer(tid: str) -> str:
    return f"{AUTHORITY}/{tid}/v2.0"


@pytest.fixture
def entra(network):
    """login.microsoftonline.com/common/v2.0 in process: the templated discovery, tenant tokens."""
    provider = FakeOP(f"{AUTHORITY}/common/v2.0")
    provider.scenario["discovery"] = {
        "issuer": TEMPLATE,
        "authorization_response_iss_parameter_supported": False,
    }
    provider.scenario["authorize"] = {"iss": None}
    network.ops.append(provider)
    return provider


def as_tenant(provider: FakeOP, tid: Any, iss: Any = None) -> None:
    """Make the provider's next ID tokens come from tenant ``tid`` (``iss`` defaults to it)."""
    provider.scenario["id_token"] = {
        "tid": tid,
        "iss": iss if iss is not None else tenant_issuer(str(tid)),
        "oid": "00000000-0000-0000-0000-0000000a11ce",
    }


def entra_source(admin_client: Any, tenants: str = HOME, tenant: str = "common") -> Source:
    response = admin_client.post(
        "/admin/django_sso/source/add-from-preset/entra/",
        {
            "name": "Microsoft",
            "slug": "honest",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "option_tenant": tenant,
            "option_allowed_tenants": tenants,
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    return Source.objects.get(slug="honest")


# ---- a generic source never takes the template ----------------------------------------------


@pytest.mark.case("CFG-07")
def test_cfg_07_generic_discovery_of_entra_common_is_an_issuer_mismatch(db, client, entra):
    form = SourceForm(data=form_data(well_known_url=entra.url("/.well-known/openid-configuration")))
    assert not form.is_valid()
    assert "issuer mismatch" in " ".join(form.errors["well_known_url"]).lower()
    assert "{tenantid}" in " ".join(form.errors["well_known_url"])
    assert not Source.objects.exists()
    assert client.post("/sso/honest/login/").status_code == 404


@pytest.mark.case("CFG-07")
def test_cfg_07_generic_discovery_at_a_literal_template_url_is_refused(db, network):
    literal = FakeOP(f"{AUTHORITY}/{{tenantid}}/v2.0")
    network.ops.append(literal)
    form = SourceForm(data=form_data(well_known_url=literal.url("/.well-known/openid-configuration")))
    assert not form.is_valid()
    assert "sso.discovery.issuer_template" in " ".join(form.errors["well_known_url"])
    assert literal.requests == []


@pytest.mark.case("CFG-07")
def test_cfg_07_a_generic_source_cannot_be_given_a_template_issuer_by_hand(db, entra):
    form = SourceForm(
        data=form_data(
            issuer=TEMPLATE,
            authorization_url=entra.url("/authorize"),
            token_url=entra.url("/token"),
            jwks_url=entra.url("/jwks"),
            tenant_allowlist="*",
        )
    )
    assert not form.is_valid()
    assert "template" in " ".join(form.errors["issuer"])


@pytest.mark.case("CFG-07")
def test_cfg_07_a_template_stored_on_a_generic_source_still_matches_nothing(
    db, client, entra, sign_in, sso_log
):
    # Bypassing the form (a raw database edit): the token check itself refuses the wildcard.
    make_source(entra, "honest", issuer=TEMPLATE, tenant_allowlist="*", iss_parameter_supported=False)
    as_tenant(entra, HOME)
    result = sign_in(provider=entra)
    assert_rejected(
        result.response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.iss_mismatch",
        ops=[entra],
        token_calls=1,
    )


# ---- the Entra preset -----------------------------------------------------------------------


@pytest.mark.case("CFG-07")
def test_cfg_07_entra_accepts_an_allowed_tenant_and_keys_the_identity_by_tenant(
    admin_client, client, entra, sign_in
):
    source = entra_source(admin_client)
    assert source.issuer == TEMPLATE
    as_tenant(entra, HOME)
    result = sign_in(provider=entra)
    assert result.response.status_code == 303, result.response.content
    identity = Identity.objects.get()
    assert identity.subject == f"{HOME}:alice-sub"
    assert identity.claims["tid"] == HOME
    assert identity.claims["iss"] == tenant_issuer(HOME)


@pytest.mark.case("CFG-07")
def test_cfg_07_an_attacker_tenant_is_refused(admin_client, client, entra, sign_in, sso_log):
    entra_source(admin_client, tenants=f"{HOME} {PARTNER}")
    # A free tenant the attacker made: Microsoft signs it with the same keys, iss fits its tid.
    as_tenant(entra, ATTACKER)
    result = sign_in(provider=entra)
    assert_rejected(
        result.response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.tenant_not_allowed",
        ops=[entra],
        token_calls=1,
    )
    assert not Identity.objects.exists()


@pytest.mark.case("CFG-07")
@pytest.mark.parametrize(
    ("tid", "iss", "code"),
    [
        (HOME, tenant_issuer(ATTACKER), "sso.id_token.iss_mismatch"),
        (ATTACKER, tenant_issuer(HOME), "sso.id_token.iss_mismatch"),
        (HOME, TEMPLATE, "sso.id_token.iss_mismatch"),
        (HOME, tenant_issuer(HOME) + "/", "sso.id_token.iss_mismatch"),
        (HOME, f"https://sts.windows.net/{HOME}/", "sso.id_token.iss_mismatch"),
        (HOME, [tenant_issuer(HOME)], "sso.id_token.iss_mismatch"),
        (HOME.upper(), tenant_issuer(HOME.upper()), "sso.id_token.bad_tid"),
        ("../../evil", f"{AUTHORITY}/../../evil/v2.0", "sso.id_token.bad_tid"),
        (["x"], tenant_issuer(HOME), "sso.id_token.bad_tid"),
        (DROP, tenant_issuer(HOME), "sso.id_token.bad_tid"),
    ],
    ids=[
        "iss of another tenant",
        "tid of another tenant",
        "iss is the template",
        "trailing slash",
        "v1 issuer",
        "iss is a list",
        "upper-case tid",
        "path in tid",
        "tid is a list",
        "no tid",
    ],
)
def test_cfg_07_iss_must_equal_the_template_with_the_tokens_own_tid(
    admin_client, client, entra, sign_in, sso_log, tid, iss, code
):
    entra_source(admin_client, tenants="*")
    as_tenant(entra, tid, iss)
    result = sign_in(provider=entra)
    assert_rejected(result.response, client, sso_log, status=400, code=code, ops=[entra], token_calls=1)


@pytest.mark.case("CFG-07")
def test_cfg_07_any_tenant_when_allowed_but_never_the_same_identity(admin_client, client, entra, sign_in):
    entra_source(admin_client, tenants="*")
    as_tenant(entra, HOME)
    assert sign_in(provider=entra).response.status_code == 303
    client.logout()
    # The same sub in another tenant is another person: pairwise subs are unique per tenant only.
    entra.users["alice"]["email"] = "alice@partner.example"
    as_tenant(entra, PARTNER)
    assert sign_in(provider=entra).response.status_code == 303
    subjects = sorted(Identity.objects.values_list("subject", flat=True))
    assert subjects == sorted([f"{HOME}:alice-sub", f"{PARTNER}:alice-sub"])
    assert len({i.user_id for i in Identity.objects.all()}) == 2


@pytest.mark.case("CFG-07")
def test_cfg_07_an_emptied_allow_list_lets_nobody_in(admin_client, client, entra, sign_in, sso_log):
    source = entra_source(admin_client)
    # Bypassing the form (a raw edit): the token check itself lets nobody in.
    source.tenant_allowlist = ""
    source.save()
    as_tenant(entra, HOME)
    result = sign_in(provider=entra)
    assert_rejected(
        result.response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.tenant_not_allowed",
        ops=[entra],
        token_calls=1,
    )


@pytest.mark.case("CFG-07")
def test_cfg_07_the_admin_will_not_save_a_template_without_tenants(admin_client, entra):
    source = entra_source(admin_client)
    data = edit_data(source, tenant_allowlist="")
    data.pop("preset", None)
    data["preset_options"] = json.dumps(source.preset_options)
    response = admin_client.post(f"/admin/django_sso/source/{source.pk}/change/", data)
    assert response.status_code == 200
    assert "tenant_allowlist" in response.context["adminform"].form.errors
    source.refresh_from_db()
    assert source.tenant_list == [HOME]


@pytest.mark.case("CFG-07")
def test_cfg_07_iss_in_the_redirect_must_fit_the_template_and_the_token(
    admin_client, client, entra, sign_in, sso_log
):
    entra_source(admin_client, tenants="*")
    as_tenant(entra, HOME)
    # A foreign issuer in the redirect is refused before the code is exchanged.
    result = sign_in(provider=entra, tamper=lambda url: with_params(url, iss="https://attacker.example/v2.0"))
    assert_rejected(
        result.response, client, sso_log, status=400, code="sso.callback.iss_mismatch", ops=[entra]
    )
    # A tenant issuer that is not the token's: refused once the token says which tenant it is.
    result = sign_in(provider=entra, tamper=lambda url: with_params(url, iss=tenant_issuer(PARTNER)))
    assert_rejected(
        result.response,
        client,
        sso_log,
        status=400,
        code="sso.callback.iss_mismatch",
        ops=[entra],
        token_calls=1,
    )
    # The right one passes.
    result = sign_in(provider=entra, tamper=lambda url: with_params(url, iss=tenant_issuer(HOME)))
    assert result.response.status_code == 303


@pytest.mark.case("CFG-07")
def test_cfg_07_a_single_tenant_source_pins_its_own_issuer(admin_client, client, network, sign_in, sso_log):
    provider = FakeOP(f"{AUTHORITY}/{HOME}/v2.0")
    provider.scenario["discovery"] = {"authorization_response_iss_parameter_supported": False}
    provider.scenario["authorize"] = {"iss": None}
    network.ops.append(provider)
    source = entra_source(admin_client, tenants="", tenant=HOME)
    assert source.issuer == tenant_issuer(HOME)
    as_tenant(provider, HOME)
    assert sign_in(provider=provider).response.status_code == 303
    assert Identity.objects.get().subject == "alice-sub"
    client.logout()
    as_tenant(provider, ATTACKER, tenant_issuer(HOME))
    result = sign_in(provider=provider)
    # No allow-list needed: the exact issuer already names the tenant; a mismatching tid is
    # only possible for a forged token, and is refused when an allow-list is set.
    assert result.response.status_code == 303
    source.tenant_allowlist = HOME
    source.save()
    client.logout()
    result = sign_in(provider=provider)
    assert_rejected(
        result.response,
        client,
        sso_log,
        status=400,
        code="sso.id_token.tenant_not_allowed",
        ops=[provider],
        token_calls=3,
    )


@pytest.mark.case("CFG-07")
def test_cfg_07_refreshing_an_entra_source_keeps_the_template(admin_client, entra):
    source = entra_source(admin_client)
    discovery.refresh(source)
    assert source.issuer == TEMPLATE
    assert source.enabled


@pytest.mark.case("CFG-07")
def test_cfg_07_a_domain_tenant_whose_id_changes_is_disabled_on_refresh(admin_client, network):
    # contoso.onmicrosoft.com answers with its tenant id as issuer; a later answer naming another
    # tenant id is an issuer change (CFG-04), not something to adopt.
    provider = FakeOP(f"{AUTHORITY}/contoso.onmicrosoft.com/v2.0")
    provider.scenario["discovery"] = {"issuer": tenant_issuer(HOME)}
    network.ops.append(provider)
    source = entra_source(admin_client, tenants="", tenant="contoso.onmicrosoft.com")
    assert source.issuer == tenant_issuer(HOME)
    provider.scenario["discovery"] = {"issuer": tenant_issuer(ATTACKER)}
    with pytest.raises(ConfigurationError) as caught:
        discovery.refresh(source)
    assert caught.value.code == "sso.discovery.issuer_changed"
    assert source.enabled is False
    assert source.issuer == tenant_issuer(HOME)
