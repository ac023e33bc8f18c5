"""OpenID Connect Discovery 1.0: fetch a provider's metadata and apply it to a source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.utils import timezone

from django_sso.exceptions import ConfigurationError
from django_sso.internal import entra
from django_sso.internal.http import check_url, request_json

if TYPE_CHECKING:
    from django_sso.models import Source

WELL_KNOWN_SUFFIX = "/.well-known/openid-configuration"

#: Discovery field -> Source field.
ENDPOINT_FIELDS = {
    "authorization_endpoint": "authorization_url",
    "token_endpoint": "token_url",
    "userinfo_endpoint": "userinfo_url",
    "jwks_uri": "jwks_url",
    "end_session_endpoint": "end_session_url",
    "introspection_endpoint": "introspection_url",
}
REQUIRED_FIELDS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
#: Asymmetric algorithms discovery may choose from when a source names none (never widens).
SAFE_ALGORITHMS = (
    "RS256",
    "PS256",
    "ES256",
    "RS384",
    "RS512",
    "PS384",
    "PS512",
    "ES384",
    "ES512",
    "EdDSA",
)


def expected_issuer(well_known_url: str) -> str:
    """Return the issuer a well-known URL promises (OIDC Discovery 4.3: the URL minus the suffix)."""
    if not well_known_url.endswith(WELL_KNOWN_SUFFIX):
        raise ConfigurationError(
            "sso.discovery.bad_url", f"the well-known URL must end with {WELL_KNOWN_SUFFIX}"
        )
    return well_known_url[: -len(WELL_KNOWN_SUFFIX)]


def fetch_metadata(well_known_url: str, *, allow_tenant_template: bool = False) -> dict[str, Any]:
    """Fetch and validate a discovery document; return it.

    Raise :class:`ConfigurationError` or :class:`ProviderError` with a code that says why:
    the issuer does not match the URL exactly (CFG-01; no normalisation of case, ports or
    slashes, but for the one at the host root), an endpoint is not https or points at a private
    address (CFG-03), a required field is missing, or the fetch failed. An issuer with a
    ``{...}`` placeholder is refused (CFG-07) unless ``allow_tenant_template`` (the Entra preset),
    and then only in the shape :func:`entra.discovery_issuer_matches` allows.
    """
    issuer = expected_issuer(well_known_url)
    if entra.is_template(issuer) and not allow_tenant_template:
        raise ConfigurationError("sso.discovery.issuer_template", "the well-known URL holds a placeholder")
    check_url(well_known_url, resolve=True)
    metadata = request_json("GET", well_known_url, headers={"Accept": "application/json"})
    found = metadata.get("issuer")
    # OIDC Discovery 4.1 drops a terminating "/" before appending the suffix. At the host root an
    # empty path and "/" are the same URL (RFC 3986 6.2.3), so there either spelling matches
    # (Auth0's issuers end with "/") and is stored exactly as returned; a path gets no leeway.
    accepted = {issuer, issuer + "/"} if not urlsplit(issuer).path else {issuer}
    if isinstance(found, str) and entra.is_template(found) and not allow_tenant_template:
        # CFG-07: a literal {tenantid} is never a wildcard for a generic provider.
        raise ConfigurationError(
            "sso.discovery.issuer_template", f"issuer {found!r} is a template, not an issuer"
        )
    tenant_issuer = allow_tenant_template and isinstance(found, str)
    if not isinstance(found, str) or (
        found not in accepted and not (tenant_issuer and entra.discovery_issuer_matches(issuer, found))
    ):
        raise ConfigurationError(
            "sso.discovery.issuer_mismatch", f"issuer {found!r} does not match {issuer!r}"
        )
    for name in REQUIRED_FIELDS:
        if not isinstance(metadata.get(name), str) or not metadata[name]:
            raise ConfigurationError("sso.discovery.incomplete", f"{name} is missing")
    for name in ENDPOINT_FIELDS:
        value = metadata.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigurationError("sso.discovery.incomplete", f"{name} is not a string")
            check_url(value, resolve=True)
    return metadata


def endpoint_origin_changes(source: Source, metadata: dict[str, Any]) -> list[str]:
    """Return the endpoints whose origin would change if ``metadata`` were applied (CFG-04)."""
    changed = []
    for meta_name, field in ENDPOINT_FIELDS.items():
        old, new = getattr(source, field), metadata.get(meta_name) or ""
        if old and new and _origin(old) != _origin(new):
            changed.append(meta_name)
    return changed


def apply_metadata(source: Source, metadata: dict[str, Any]) -> None:
    """Fill the source's endpoints, issuer and capabilities from validated metadata (unsaved)."""
    source.issuer = metadata["issuer"]
    for meta_name, field in ENDPOINT_FIELDS.items():
        setattr(source, field, metadata.get(meta_name) or "")
    source.iss_parameter_supported = metadata.get("authorization_response_iss_parameter_supported") is True
    if not source.signing_algorithms.strip():
        supported = metadata.get("id_token_signing_alg_values_supported") or []
        source.signing_algorithms = next((a for a in SAFE_ALGORITHMS if a in supported), "RS256")
    if source.require_pkce_support and "S256" not in (metadata.get("code_challenge_methods_supported") or []):
        raise ConfigurationError("sso.discovery.no_pkce", "the provider does not advertise PKCE S256")
    source.provider_metadata = metadata
    source.last_discovery_at = timezone.now()


def refresh(source: Source) -> None:
    """Fetch the source's well-known URL again and apply it (unsaved), with CFG-04's guards.

    A changed issuer disables the source; an endpoint moved to another origin is not adopted.
    Both raise :class:`ConfigurationError` after making the change to ``source`` that the caller
    should save (disabling), so an operator sees why.
    """
    try:
        metadata = fetch_metadata(source.well_known_url, allow_tenant_template=entra.accepts_template(source))
    except ConfigurationError as exc:
        if exc.code == "sso.discovery.issuer_mismatch" and source.issuer:
            source.enabled = False
            raise ConfigurationError("sso.discovery.issuer_changed", exc.detail) from exc
        raise
    if source.issuer and metadata["issuer"] != source.issuer:
        # The URL pins the issuer of a generic source; an Entra tenant named by domain answers
        # with its tenant id, so compare with what was stored as well.
        source.enabled = False
        raise ConfigurationError(
            "sso.discovery.issuer_changed", f"issuer {metadata['issuer']!r} is not {source.issuer!r}"
        )
    moved = endpoint_origin_changes(source, metadata)
    if moved:
        raise ConfigurationError(
            "sso.discovery.origin_changed", f"endpoints moved to another origin: {', '.join(moved)}"
        )
    apply_metadata(source, metadata)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
