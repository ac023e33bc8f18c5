"""RP-CASES section A: provider configuration and discovery (CFG-01 .. CFG-06)."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from django_sso.adapter import DefaultSSOAdapter
from django_sso.forms import SourceForm
from django_sso.models import Source
from tests.conftest import make_source
from tests.fakeop import FakeNetworkAdapter, FakeOP, Recorded
from tests.test_discovery import WELL_KNOWN, discovered, form_data, snapshot, well_known_fetches

ADMIN_ADD = "/admin/django_sso/source/add/"
ADMIN_LIST = "/admin/django_sso/source/"


def save_form(url: str, **overrides: Any) -> SourceForm:
    form = SourceForm(data=form_data(well_known_url=url, **overrides))
    if form.is_valid():
        form.save()
    return form


def well_known_error(form: SourceForm) -> str:
    assert not form.is_valid()
    return " ".join(form.errors["well_known_url"])


def json_response(document: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()


def assert_never_used(client: Any, slug: str = "honest") -> None:
    """Nothing was saved, so no authorization request can be built from it."""
    assert Source.objects.count() == 0
    assert client.post(f"/sso/{slug}/login/").status_code == 404


# ---- CFG-01 ---------------------------------------------------------------------------------

NEAR_MISSES = {
    "trailing slash added": "https://op.example/honest/",
    "host case": "https://OP.example/honest",
    "path case": "https://op.example/Honest",
    "explicit :443": "https://op.example:443/honest",
    "http": "http://op.example/honest",
    "other tenant": "https://op.example/other",
    "prefix only": "https://op.example",
}


@pytest.mark.case("CFG-01")
@pytest.mark.parametrize("near_miss", NEAR_MISSES)
def test_cfg_01_near_miss_issuers_are_refused(db, client, op, near_miss):
    op.scenario["discovery"] = {"issuer": NEAR_MISSES[near_miss]}
    form = save_form(op.url(WELL_KNOWN))
    assert "issuer mismatch" in well_known_error(form).lower()
    assert_never_used(client)


@pytest.mark.case("CFG-01")
def test_cfg_01_trailing_slash_removed_is_refused(db, client, network):
    # An issuer with a path that ends in "/", its well-known URL built by plain concatenation.
    slashed = FakeOP("https://op.example/t1/")
    network.ops.append(slashed)
    slashed.scenario["discovery"] = {"issuer": "https://op.example/t1"}
    form = save_form(slashed.url(WELL_KNOWN))
    assert slashed.url(WELL_KNOWN) == "https://op.example/t1//.well-known/openid-configuration"
    assert "issuer mismatch" in well_known_error(form).lower()
    assert_never_used(client)


@pytest.mark.case("CFG-01")
def test_cfg_01_the_admin_sees_issuer_mismatch(admin_client, op):
    op.scenario["discovery"] = {"issuer": "https://op.example/honest/"}
    response = admin_client.post(ADMIN_ADD, form_data(well_known_url=op.url(WELL_KNOWN)))
    assert response.status_code == 200
    assert "Issuer mismatch" in response.content.decode()
    assert "issuer mismatch" in " ".join(response.context["adminform"].form.errors["well_known_url"]).lower()
    assert Source.objects.count() == 0


@pytest.mark.case("CFG-01")
def test_cfg_01_a_trailing_slash_issuer_at_the_host_root_is_accepted_and_stored_exactly(
    db, client, network, op, sign_in
):
    # Auth0: issuer "https://tenant.auth0.com/", well-known URL built from it per OIDC Discovery 4.1
    # (terminating "/" removed, suffix appended).
    auth0 = FakeOP("https://tenant.auth0.example", key_index=1)
    network.ops.append(auth0)
    issuer = "https://tenant.auth0.example/"
    auth0.scenario.update(discovery={"issuer": issuer}, authorize={"iss": issuer}, id_token={"iss": issuer})
    well_known = issuer.rstrip("/") + WELL_KNOWN
    assert well_known == "https://tenant.auth0.example/.well-known/openid-configuration"
    source = discovered(auth0, slug="auth0", name="Auth0")
    source.refresh_from_db()
    assert source.issuer == issuer
    assert source.provider_metadata["issuer"] == issuer
    # The stored issuer is the one tokens are compared against: the sign-in works.
    result = sign_in("auth0", provider=auth0)
    assert result.response.status_code == 303, result.response.content


@pytest.mark.case("CFG-01")
def test_cfg_01_a_root_issuer_gets_no_other_leeway(db, client, network):
    root = FakeOP("https://tenant.example")
    network.ops.append(root)
    for near_miss in ("https://TENANT.example/", "https://tenant.example:443/", "http://tenant.example/"):
        root.scenario["discovery"] = {"issuer": near_miss}
        assert "issuer mismatch" in well_known_error(save_form(root.url(WELL_KNOWN))).lower()
    assert_never_used(client)


@pytest.mark.case("CFG-01")
def test_cfg_01_a_path_issuer_with_a_trailing_slash_matches_only_its_own_url(db, network):
    slashed = FakeOP("https://op.example/t1/")
    network.ops.append(slashed)
    source = discovered(slashed)
    assert source.issuer == "https://op.example/t1/"


# ---- CFG-02 ---------------------------------------------------------------------------------


@pytest.mark.case("CFG-02")
def test_cfg_02_a_second_source_with_the_same_discovered_issuer_is_refused(db, op):
    first = discovered(op)
    form = save_form(op.url(WELL_KNOWN), slug="copycat", name="Copycat")
    assert "already used" in well_known_error(form)
    assert list(Source.objects.values_list("slug", flat=True)) == [first.slug]


@pytest.mark.case("CFG-02")
def test_cfg_02_a_second_source_with_the_same_typed_issuer_is_refused(db, op):
    make_source(op, "honest")
    form = SourceForm(
        data=form_data(
            slug="copycat",
            issuer=op.issuer,
            authorization_url="https://evil.example/authorize",
            token_url="https://evil.example/token",
            jwks_url="https://evil.example/jwks",
        )
    )
    assert not form.is_valid()
    assert "already used" in " ".join(form.errors["issuer"])
    assert Source.objects.count() == 1


@pytest.mark.case("CFG-02")
def test_cfg_02_the_database_refuses_a_duplicate_issuer_too(db, op):
    make_source(op, "honest")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_source(op, "copycat")
    # Sources without an issuer (OAuth 2, OAuth 1) do not clash with each other.
    make_source(op, "plain-a", protocol="oauth2", issuer="")
    make_source(op, "plain-b", protocol="oauth2", issuer="")


# ---- CFG-03 ---------------------------------------------------------------------------------


@dataclass
class LocalProvider:
    base: str
    ca_file: Path | None
    release: threading.Event


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def _serve(tmp_path: Path, *, tls: bool, stall: bool = False) -> Any:
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if stall:
                release.wait(30)
                return
            base = f"{scheme}://127.0.0.1:{server.server_address[1]}"
            body = json.dumps(
                {
                    "issuer": base,
                    "authorization_endpoint": base + "/authorize",
                    "token_endpoint": base + "/token",
                    "jwks_uri": base + "/jwks",
                    "code_challenge_methods_supported": ["S256"],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output clean."""

    scheme = "https" if tls else "http"
    server = HTTPServer(("127.0.0.1", 0), Handler)
    ca_file = None
    if tls:
        ca_file, key_file = _self_signed(tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalProvider(f"{scheme}://127.0.0.1:{server.server_address[1]}", ca_file, release)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def tls_provider(tmp_path: Path, settings: Any) -> Any:
    """A real TLS provider on 127.0.0.1 with a self-signed certificate; no fake network."""
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    yield from _serve(tmp_path, tls=True)


@pytest.fixture
def stalling_provider(tmp_path: Path, settings: Any) -> Any:
    """A real provider on 127.0.0.1 that accepts the request and never answers."""
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    yield from _serve(tmp_path, tls=False, stall=True)


class TrustingAdapter(DefaultSSOAdapter):
    """Trust one extra CA bundle: the control showing only TLS verification stopped the save."""

    ca_file: str | None = None

    def configure_http_session(self, session: Any) -> None:
        session.verify = self.ca_file


@pytest.mark.case("CFG-03")
def test_cfg_03_a_self_signed_certificate_is_a_clear_tls_error(db, client, tls_provider):
    form = save_form(tls_provider.base + WELL_KNOWN)
    error = well_known_error(form)
    assert "TLS certificate could not be verified" in error
    assert "sso.http.tls" in error
    assert_never_used(client)


@pytest.mark.case("CFG-03")
def test_cfg_03_the_same_server_is_accepted_once_its_certificate_is_trusted(db, tls_provider, settings):
    settings.DJANGO_SSO_ADAPTER = "tests.test_cases_config.TrustingAdapter"
    TrustingAdapter.ca_file = str(tls_provider.ca_file)
    try:
        form = save_form(tls_provider.base + WELL_KNOWN)
    finally:
        TrustingAdapter.ca_file = None
    assert form.is_valid(), form.errors
    assert Source.objects.get().issuer == tls_provider.base


@pytest.mark.case("CFG-03")
def test_cfg_03_a_slow_provider_times_out_and_nothing_is_saved(db, client, stalling_provider, settings):
    settings.DJANGO_SSO_READ_TIMEOUT = 0.2
    form = save_form(stalling_provider.base + WELL_KNOWN)
    assert "did not answer in time" in well_known_error(form)
    assert_never_used(client)


@pytest.mark.case("CFG-03")
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_cfg_03_a_redirecting_discovery_is_not_followed(db, client, op, network, status):
    op.scenario["respond"] = {
        WELL_KNOWN: (status, {"Location": "https://collector.example" + WELL_KNOWN}, b"")
    }
    form = save_form(op.url(WELL_KNOWN))
    assert "redirect" in well_known_error(form)
    assert network.collector == []
    assert_never_used(client)


@pytest.mark.case("CFG-03")
@pytest.mark.parametrize(
    "endpoint", ["jwks_uri", "token_endpoint", "userinfo_endpoint", "authorization_endpoint"]
)
def test_cfg_03_http_endpoints_are_refused(db, client, op, endpoint):
    op.scenario["discovery"] = {endpoint: "http://op.example/honest/" + endpoint}
    form = save_form(op.url(WELL_KNOWN))
    assert "Endpoints must use https" in well_known_error(form)
    assert_never_used(client)


@pytest.mark.case("CFG-03")
@pytest.mark.parametrize(
    "address",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/token",
        "https://127.0.0.1/token",
        "https://localhost/token",
        "https://[::1]/token",
        "https://internal.example/token",
    ],
)
def test_cfg_03_private_address_endpoints_are_refused(db, client, op, settings, address):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    FakeNetworkAdapter.dns = {"internal.example": ["10.20.30.40"]}
    op.scenario["discovery"] = {"token_endpoint": address}
    form = save_form(op.url(WELL_KNOWN))
    assert "private or loopback" in well_known_error(form)
    assert_never_used(client)


@pytest.mark.case("CFG-03")
def test_cfg_03_a_discovery_host_resolving_to_a_private_address_is_not_even_fetched(db, client, op, settings):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = []
    FakeNetworkAdapter.dns = {"op.example": ["169.254.169.254"]}
    form = save_form(op.url(WELL_KNOWN))
    assert "private or loopback" in well_known_error(form)
    assert op.requests == []
    assert_never_used(client)


@pytest.mark.case("CFG-03")
def test_cfg_03_a_private_endpoint_is_accepted_once_an_admin_allows_its_host(db, op, settings):
    settings.DJANGO_SSO_ALLOWED_LOCAL_HOSTS = ["internal.example"]
    FakeNetworkAdapter.dns = {"internal.example": ["10.20.30.40"]}
    op.scenario["discovery"] = {"token_endpoint": "https://internal.example/token"}
    assert discovered(op).token_url == "https://internal.example/token"


@pytest.mark.case("CFG-03")
def test_cfg_03_an_oversize_discovery_body_is_refused(db, client, op):
    document = {**op.discovery(), "padding": "x" * (1024 * 1024)}
    op.scenario["respond"] = {WELL_KNOWN: json_response(document)}
    form = save_form(op.url(WELL_KNOWN))
    assert "too large" in well_known_error(form)
    assert_never_used(client)


# ---- CFG-04 ---------------------------------------------------------------------------------


def refetch_in_admin(admin_client: Any, source: Source) -> list[str]:
    response = admin_client.post(
        ADMIN_LIST, {"action": "refetch_discovery", "_selected_action": [source.pk]}, follow=True
    )
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.case("CFG-04")
def test_cfg_04_an_issuer_change_on_refresh_disables_the_source_in_the_admin(admin_client, op):
    source = discovered(op)
    op.scenario["discovery"] = {"issuer": "https://op.example/evil"}
    messages = refetch_in_admin(admin_client, source)
    assert any("Issuer mismatch" in m and "disabled" in m for m in messages), messages
    source.refresh_from_db()
    assert source.enabled is False
    assert source.issuer == op.issuer


@pytest.mark.case("CFG-04")
def test_cfg_04_an_issuer_change_on_refresh_disables_the_source_in_the_command(db, op):
    source = discovered(op)
    op.scenario["discovery"] = {"issuer": "https://op.example/evil"}
    with pytest.raises(CommandError, match="Issuer mismatch"):
        call_command("sso_source", "refresh", "honest", stdout=StringIO())
    source.refresh_from_db()
    assert source.enabled is False
    assert source.issuer == op.issuer


@pytest.mark.case("CFG-04")
@pytest.mark.parametrize(
    "moved",
    {
        "token_endpoint": "https://evil.example/token",
        "jwks_uri": "https://evil.example/jwks",
        "userinfo_endpoint": "https://op.example:8443/honest/userinfo",
    }.items(),
)
def test_cfg_04_an_endpoint_moved_to_another_origin_is_not_adopted(admin_client, op, moved):
    endpoint, url = moved
    source = discovered(op)
    before = snapshot(source)
    op.scenario["discovery"] = {endpoint: url}
    messages = refetch_in_admin(admin_client, source)
    assert any("another origin" in m and endpoint in m for m in messages), messages
    assert snapshot(source) == before
    assert well_known_fetches(op) == 2
    with pytest.raises(CommandError, match=f"another origin.*{endpoint}"):
        call_command("sso_source", "refresh", "honest", stdout=StringIO())
    assert snapshot(source) == before


@pytest.mark.case("CFG-04")
def test_cfg_04_a_refresh_re_runs_the_cfg_03_checks(admin_client, op):
    source = discovered(op)
    before = snapshot(source)
    op.scenario["discovery"] = {"jwks_uri": "http://op.example/honest/jwks"}
    messages = refetch_in_admin(admin_client, source)
    assert any("must use https" in m for m in messages), messages
    assert snapshot(source) == before


@pytest.mark.case("CFG-04")
def test_cfg_04_metadata_is_kept_per_source(db, op, attacker_op):
    honest = discovered(op)
    attacker_op.scenario["discovery"] = {"token_endpoint": attacker_op.url("/v9/token")}
    attacker = discovered(attacker_op, slug="attacker", name="Attacker")
    honest.refresh_from_db()
    assert honest.provider_metadata["token_endpoint"] == op.url("/token")
    assert attacker.provider_metadata["token_endpoint"] == attacker_op.url("/v9/token")
    assert honest.cache_key("jwks") != attacker.cache_key("jwks")


# ---- CFG-05 ---------------------------------------------------------------------------------


@pytest.mark.case("CFG-05")
def test_cfg_05_the_discovered_jwks_uri_and_endpoints_are_used(db, op, sign_in):
    jwks_path, token_path = "/keys/run-7f3a9c", "/oauth2/v9/token"
    op.scenario["discovery"] = {"jwks_uri": op.url(jwks_path), "token_endpoint": op.url(token_path)}
    op.scenario["respond"] = {
        jwks_path: json_response(op.jwks()),
        token_path: lambda request: op.token(
            Recorded("POST", request.url, dict(request.headers), request.body or "")
        ),
        "/jwks": (410, {}, b""),
        "/token": (410, {}, b""),
    }
    discovered(op)
    result = sign_in()
    assert result.response.status_code == 303, result.response.content
    paths = [r.path for r in op.requests]
    assert op.url(jwks_path).endswith(jwks_path)
    assert "/honest" + jwks_path in paths
    assert "/honest" + token_path in paths
    assert "/honest/jwks" not in paths
    assert "/honest/token" not in paths


# ---- CFG-06 ---------------------------------------------------------------------------------

PKCE_ADVERTISEMENTS = {"missing": None, "plain only": ["plain"]}


def advertise_pkce(op: FakeOP, methods: list[str] | None) -> None:
    document = op.discovery()
    if methods is None:
        del document["code_challenge_methods_supported"]
    else:
        document["code_challenge_methods_supported"] = methods
    op.scenario["respond"] = {WELL_KNOWN: json_response(document)}


@pytest.mark.case("CFG-06")
@pytest.mark.parametrize("advertised", PKCE_ADVERTISEMENTS)
def test_cfg_06_s256_and_state_are_sent_without_advertised_pkce(db, op, sign_in, advertised):
    advertise_pkce(op, PKCE_ADVERTISEMENTS[advertised])
    discovered(op)
    result = sign_in()
    params = result.authorize_params
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 22
    assert result.response.status_code == 303, result.response.content
    token_request = next(r for r in op.requests if r.path == "/honest/token")
    assert "code_verifier" in token_request.form


@pytest.mark.case("CFG-06")
@pytest.mark.parametrize("advertised", PKCE_ADVERTISEMENTS)
def test_cfg_06_require_pkce_support_refuses_the_configuration(db, client, op, advertised):
    advertise_pkce(op, PKCE_ADVERTISEMENTS[advertised])
    form = save_form(op.url(WELL_KNOWN), require_pkce_support=True)
    assert "does not advertise PKCE" in well_known_error(form)
    assert_never_used(client)


@pytest.mark.case("CFG-06")
def test_cfg_06_require_pkce_support_accepts_an_advertised_s256(db, op):
    assert discovered(op, require_pkce_support=True).require_pkce_support is True
