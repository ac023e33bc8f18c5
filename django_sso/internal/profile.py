"""Plain OAuth 2 and OAuth 1.0a sources: read the profile URL and turn it into claims.

Without an ID token nothing says which field is the person: the source names it
(``profile_subject_field``, e.g. GitHub's ``id``, X's ``user_id``), and likewise the e-mail, the
name and the field that marks the e-mail verified. The normalised claims have the shape the
backend reads for OpenID Connect: ``sub``, ``email``, ``email_verified``, ``name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from django_sso.exceptions import ProviderError, TokenValidationError
from django_sso.internal import grants
from django_sso.internal.http import parse_json, send

if TYPE_CHECKING:
    from django_sso.models import Source

KIND = "sso.profile"
MAX_SUBJECT_LENGTH = 255
#: Aggregated and distributed claims are never fetched nor merged (UI-04).
IGNORED_MEMBERS = frozenset({"_claim_names", "_claim_sources"})
#: Claims only this module sets, from the configured fields; never taken from the raw profile.
NORMALISED = ("sub", "email", "email_verified", "name")


class BearerAuth(requests.auth.AuthBase):
    """Send an OAuth 2 access token in the ``Authorization`` header only (RFC 6750 2.1)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def lookup(data: Any, path: str) -> Any:
    """Return the value at a dotted ``path`` (as the role mapping reads claims), or None."""
    if not path:
        return None
    found = grants.lookup(data, path)
    return None if found is grants.MISSING else found


def subject_of(value: Any) -> str:
    """Return the subject for a profile's id value.

    A non-empty string is kept as is; an integer id (GitHub's) is written in decimal. Anything
    else (a float, a boolean, a list, an object, null) is refused, never turned into a string:
    ``str(["a"])`` would make an id no provider ever issued.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_SUBJECT_LENGTH:
        raise TokenValidationError(f"{KIND}.bad_sub", f"the subject is a {type(value).__name__}")
    return value


def fetch(url: str, auth: requests.auth.AuthBase) -> Any:
    """GET a provider URL with ``auth`` and return its JSON body (an object or a list)."""
    response = send("GET", url, kind=KIND, auth=auth, headers={"Accept": "application/json"})
    try:
        return parse_json(response)
    except ProviderError as exc:
        raise ProviderError(f"{KIND}.not_json", exc.detail) from exc


def fetch_claims(source: Source, auth: requests.auth.AuthBase, extra: dict[str, Any] | None = None) -> dict:
    """Return the normalised claims from the source's profile URL (and e-mails URL, if any).

    ``extra`` holds values the provider gave with the token (OAuth 1's ``user_id``); the profile
    wins where both have a field.
    """
    data = fetch(source.userinfo_url, auth)
    if not isinstance(data, dict):
        raise ProviderError(f"{KIND}.not_json", "the profile is not a JSON object")
    emails = None
    if source.emails_url:
        emails = fetch(source.emails_url, auth)
        if not isinstance(emails, list):
            raise ProviderError(f"{KIND}.not_json", "the e-mail list is not a JSON array")
    return normalise(source, {**(extra or {}), **data}, emails=emails)


def normalise(source: Source, profile: dict[str, Any], *, emails: list[Any] | None = None) -> dict[str, Any]:
    """Return claims from a raw profile, by the source's field settings.

    The raw members are kept (they are stored on the identity), but ``sub``, ``email``,
    ``email_verified`` and ``name`` come only from the configured fields: a profile's own
    ``email_verified`` counts only when the operator named that field.
    """
    claims = {k: v for k, v in profile.items() if k not in IGNORED_MEMBERS and k not in NORMALISED}
    claims["sub"] = subject_of(lookup(profile, source.profile_subject_field or "sub"))
    email = lookup(profile, source.profile_email_field)
    if isinstance(email, str) and "@" in email:
        claims["email"] = email
        claims["email_verified"] = lookup(profile, source.profile_email_verified_field) is True
    name = lookup(profile, source.profile_name_field)
    if isinstance(name, str) and name.strip():
        claims["name"] = name
    if emails is not None:
        _apply_email_list(claims, emails)
    return claims


def _apply_email_list(claims: dict[str, Any], entries: list[Any]) -> None:
    """Pick the e-mail from a GitHub-style list: the primary one when verified.

    Otherwise the profile's own address counts as verified only when the list says so; with no
    address in the profile, the primary one is used, unverified.
    """
    usable = [
        e for e in entries if isinstance(e, dict) and isinstance(e.get("email"), str) and "@" in e["email"]
    ]
    verified = {e["email"].lower() for e in usable if e.get("verified") is True}
    primary = next((e for e in usable if e.get("primary") is True), None)
    if primary is not None and primary["email"].lower() in verified:
        claims["email"], claims["email_verified"] = primary["email"], True
    elif "email" in claims:
        claims["email_verified"] = claims["email"].lower() in verified
    elif primary is not None:
        claims["email"], claims["email_verified"] = primary["email"], False
