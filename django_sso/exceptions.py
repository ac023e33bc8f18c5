"""One error hierarchy for everything that can go wrong in a sign-in or a token check.

Each class carries a machine-readable ``code`` (logged, e.g. ``sso.id_token.aud_mismatch``) and the
HTTP ``status`` the browser flow answers with. The message shown to people is generic and
translated; the detail goes to the log only, never containing a token, code or secret.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _


class SSOError(Exception):
    """Base class: a sign-in or token check that must stop."""

    status = 400
    default_code = "sso.error"
    public_message = _("Sign-in could not be completed. Please try again.")

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        self.code = code or self.default_code
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)


class ConfigurationError(SSOError):
    """The source's configuration is unusable (discovery, endpoints, keys)."""

    status = 502
    default_code = "sso.config.invalid"
    public_message = _("This sign-in method is not configured correctly.")


class ProviderError(SSOError):
    """The provider answered badly or not at all (timeout, 5xx, non-JSON, oversize)."""

    status = 502
    default_code = "sso.provider.unavailable"
    public_message = _("The identity provider could not be reached or answered unexpectedly.")


class CallbackError(SSOError):
    """The callback request itself is unacceptable (state, iss, duplicates, error=)."""

    status = 400
    default_code = "sso.callback.invalid"


class SessionExpired(CallbackError):
    """No sign-in in progress for this browser: the session cookie is gone or the flow expired."""

    default_code = "sso.state.unknown"
    public_message = _("Your sign-in session expired. Please start again.")


class AuthorizationDenied(CallbackError):
    """The provider answered the authorization request with an error (e.g. access_denied)."""

    default_code = "sso.authorize.denied"
    public_message = _("Sign-in was cancelled or refused at the identity provider.")


class InvalidGrant(CallbackError):
    """The token endpoint refused the authorization code."""

    default_code = "sso.token.invalid_grant"
    public_message = _("The sign-in link was already used or has expired. Please start again.")


class TokenValidationError(SSOError):
    """A token from the provider failed validation (signature, claims, types)."""

    status = 400
    default_code = "sso.token.invalid"


class PolicyRefused(SSOError):
    """The provider vouched for the person, but this site's policy refuses the sign-in."""

    status = 403
    default_code = "sso.policy.refused"
    public_message = _("Your account is not allowed to sign in here.")


class SourceDisabled(PolicyRefused):
    """The source exists but is switched off."""

    status = 404
    default_code = "sso.source.disabled"
    public_message = _("This sign-in method is not available.")


class ReauthenticationRequired(SSOError):
    """The stored tokens are gone or unusable (revoked, refused, none kept): sign in again."""

    status = 401
    default_code = "sso.tokens.reauthenticate"
    public_message = _("Please sign in again.")


class BearerError(SSOError):
    """An API request refused (RFC 6750 3): answered with ``WWW-Authenticate: Bearer ...``.

    ``error`` is the RFC 6750 error code; empty when the request carried no credentials at all
    (3.1: then the challenge names no error). ``code`` is the machine-readable reason that is
    logged; ``description`` the short English text sent as ``error_description``.
    """

    status = 401
    error = ""
    default_code = "sso.bearer.missing"
    description = ""

    def __init__(self, code: str | None = None, detail: str = "", *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(code, detail)
        self.scopes = tuple(scopes)


class MissingToken(BearerError):
    """No bearer token in the request (RFC 6750 3.1: a challenge without an error code)."""


class InvalidRequest(BearerError):
    """The request is malformed: a broken ``Authorization`` header, or a token sent twice."""

    status = 400
    error = "invalid_request"
    default_code = "sso.bearer.invalid_request"
    description = "The request does not carry a bearer token the way RFC 6750 allows."


class InvalidToken(BearerError):
    """The token is expired, revoked, malformed, from an untrusted issuer or for another API."""

    status = 401
    error = "invalid_token"
    default_code = "sso.bearer.invalid"
    description = "The access token is invalid."


class InsufficientScope(BearerError):
    """The token is valid but does not grant what the resource needs (RFC 6750 3.1)."""

    status = 403
    error = "insufficient_scope"
    default_code = "sso.bearer.insufficient_scope"
    description = "The access token does not grant what this resource needs."


class BearerUnavailable(BearerError):
    """The token could not be checked now: the provider's keys or introspection are unreachable.

    Answered 503 with ``Retry-After``: failing closed, without telling the client its token is bad.
    """

    status = 503
    default_code = "sso.bearer.unavailable"
    description = "The access token cannot be checked right now."
