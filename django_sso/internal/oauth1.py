"""OAuth 1.0a (RFC 5849) sign-in through Authlib's OAuth 1 client, HMAC-SHA1 signed.

1. Temporary credentials: a signed POST to the request-token URL carrying ``oauth_callback``;
   the answer must confirm it (``oauth_callback_confirmed=true``, RFC 5849 2.1), or the
   provider speaks the 1.0 protocol of the 2009.1 session-fixation advisory and is refused.
2. The browser goes to the authorization URL with the temporary token. The flow record in the
   session is stored under that token, with its secret: server-side, single use.
3. The callback must bring back this session's token (found by a constant-time compare, so a
   token from another browser is never found) and ``oauth_verifier``; then token credentials
   are fetched and the profile is read with them (:mod:`django_sso.internal.profile`).

PLAINTEXT and RSA-SHA1 are not offered: HMAC-SHA1 only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from authlib.common.urls import add_params_to_uri
from authlib.integrations.requests_client import OAuth1Auth
from authlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_HEADER

from django_sso.exceptions import ProviderError
from django_sso.internal import profile
from django_sso.internal.http import check_url, send

if TYPE_CHECKING:
    from django_sso.internal.flow import Flow
    from django_sso.models import Source

KIND = "sso.oauth1"
SECRET_KEY = "oauth_token_secret"
MAX_TOKEN_LENGTH = 1024


def signer(source: Source, **credentials: Any) -> OAuth1Auth:
    """Return the request signer: the consumer key and secret, plus any token credentials."""
    return OAuth1Auth(
        client_id=source.client_id,
        client_secret=source.client_secret,
        signature_method=SIGNATURE_HMAC_SHA1,
        signature_type=SIGNATURE_TYPE_HEADER,
        **credentials,
    )


def _credentials(source: Source, url: str, auth: OAuth1Auth, step: str) -> dict[str, str]:
    """POST a signed request for credentials; return the answer's parameters."""
    response = send("POST", url, kind=f"{KIND}.{step}", auth=auth)
    values = _parse(response.content, response.headers.get("Content-Type", ""), step)
    for name in ("oauth_token", SECRET_KEY):
        value = values.get(name)
        if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_LENGTH:
            raise ProviderError(f"{KIND}.{step}.no_{name}")
    return values


def _parse(body: bytes, content_type: str, step: str) -> dict[str, str]:
    # RFC 5849 2.1/2.3: form-encoded; a few providers answer JSON. A repeated name is refused.
    try:
        text = body.decode("utf-8")
        if "json" in content_type.lower():
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            pairs = [
                (k, "true" if v is True else v) for k, v in data.items() if isinstance(v, str) or v is True
            ]
        else:
            pairs = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=bool(text.strip()))
    except ValueError as exc:
        raise ProviderError(f"{KIND}.{step}.unreadable") from exc
    values = dict(pairs)
    if len(values) != len(pairs):
        raise ProviderError(f"{KIND}.{step}.duplicate_param")
    return values


def authorization_url(source: Source, flow: Flow) -> str:
    """Get temporary credentials and return the URL that sends the browser to the provider.

    The flow is rekeyed by the temporary token (the callback brings back no ``state``) and
    keeps the token secret; the caller stores it in the session.
    """
    check_url(source.authorization_url)
    temporary = _credentials(
        source,
        source.request_token_url,
        signer(source, redirect_uri=flow.redirect_uri),
        "request_token",
    )
    # RFC 5849 2.1: "MUST be present and set to true". Authlib's own provider writes "True", so
    # the comparison ignores case; what matters is that the provider confirmed the callback.
    if temporary.get("oauth_callback_confirmed", "").lower() != "true":
        raise ProviderError(f"{KIND}.callback_not_confirmed")
    flow.state = temporary["oauth_token"]
    flow.extra = {SECRET_KEY: temporary[SECRET_KEY]}
    params = {
        k: str(v) for k, v in (source.extra_authorize_params or {}).items() if not k.startswith("oauth_")
    }
    params["oauth_token"] = temporary["oauth_token"]
    return add_params_to_uri(source.authorization_url, list(params.items()))


def finish(source: Source, flow: Flow, verifier: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trade the temporary credentials and verifier for token credentials; read the profile.

    Return ``(token, claims)``. The token secret is not returned: nothing keeps it.
    """
    auth = signer(source, token=flow.state, token_secret=flow.extra.get(SECRET_KEY), verifier=verifier)
    credentials = _credentials(source, source.token_url, auth, "access_token")
    access = signer(source, token=credentials["oauth_token"], token_secret=credentials[SECRET_KEY])
    # RFC 5849 2.3 allows extra parameters (X's user_id and screen_name): offered to the profile.
    extra = {k: v for k, v in credentials.items() if not k.startswith("oauth_")}
    claims = profile.fetch_claims(source, access, extra=extra)
    return {"access_token": credentials["oauth_token"], "token_type": "OAuth", "scope": []}, claims
