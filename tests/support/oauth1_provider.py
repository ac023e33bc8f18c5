"""A real OAuth 1.0a provider on loopback: Authlib's server side behind a tiny WSGI app.

Authlib's ``AuthorizationServer`` and ``ResourceProtector`` do the protocol (signature
verification, nonce and timestamp checks, temporary credentials, verifiers); this module only
stores their records in memory and serves them over HTTP on ``127.0.0.1`` from a thread, so the
site talks to it through its real outbound HTTP code. X/Twitter-shaped, like most OAuth 1 APIs
still in use:

* ``POST /oauth/request_token`` — temporary credentials (``oauth_callback_confirmed``);
* ``GET /oauth/authorize?oauth_token=...&login=alice`` — scripted consent (``deny=1`` refuses),
  302 to the callback with ``oauth_token`` and ``oauth_verifier``;
* ``POST /oauth/access_token`` — token credentials, plus ``user_id`` and ``screen_name``;
* ``GET /1.1/account/verify_credentials.json`` — the profile (signed with token credentials).

Knobs (``provider.knobs``): ``callback_confirmed`` (a value, or None to omit it). Every request
is recorded with its OAuth parameters and the token secret that signed it, for independent
signature checks.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from authlib.common.urls import url_encode
from authlib.oauth1 import AuthorizationServer, ResourceProtector
from authlib.oauth1.errors import OAuth1Error
from authlib.oauth1.rfc5849.models import ClientMixin, TemporaryCredential
from authlib.oauth1.rfc5849.wrapper import OAuth1Request

CONSUMER_KEY = "oauth1-consumer-key"
CONSUMER_SECRET = "oauth1-consumer-secret-0123456789"
PROFILE_PATH = "/1.1/account/verify_credentials.json"


@dataclass
class Consumer(ClientMixin):
    client_id: str
    client_secret: str
    default_redirect_uri: str = ""

    def get_default_redirect_uri(self) -> str:
        return self.default_redirect_uri

    def get_client_secret(self) -> str:
        return self.client_secret

    def get_rsa_public_key(self) -> None:
        return None


@dataclass
class RecordedRequest:
    method: str
    path: str
    url: str
    headers: dict[str, str]
    body: str
    oauth: dict[str, str]
    #: The secret of the token the request was signed with ("" for none), for re-verification.
    token_secret: str = ""
    status: int = 0


@dataclass
class OAuth1Provider:
    """One OAuth 1.0a provider; use as a context manager or call :meth:`start`/:meth:`stop`."""

    consumers: dict[str, Consumer] = field(
        default_factory=lambda: {CONSUMER_KEY: Consumer(CONSUMER_KEY, CONSUMER_SECRET)}
    )
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "alice": {
                "id": 1001,
                "screen_name": "alice",
                "name": "Alice Example",
                "email": "alice@example.com",
            },
            "bob": {"id": 1002, "screen_name": "bob", "name": "Bob Builder", "email": "bob@example.com"},
        }
    )
    knobs: dict[str, Any] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    temporary: dict[str, TemporaryCredential] = field(default_factory=dict)
    tokens: dict[str, TemporaryCredential] = field(default_factory=dict)
    nonces: set[tuple[str, ...]] = field(default_factory=set)
    base_url: str = ""

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> OAuth1Provider:
        self._server: WSGIServer = make_server("127.0.0.1", 0, self.app, handler_class=_QuietHandler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.authorization_server = _Server(self)
        self.protector = _Protector(self)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OAuth1Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.knobs.clear()
        self.requests.clear()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # ---- the browser leg -------------------------------------------------------------------
    def authorize(self, authorize_url: str, login: str | None = "alice") -> str:
        """Visit the authorization URL as ``login`` (None refuses); return the redirect back."""
        extra = {"login": login} if login else {"deny": "1"}
        separator = "&" if urlsplit(authorize_url).query else "?"
        response = requests.get(
            f"{authorize_url}{separator}{urlencode(extra)}", allow_redirects=False, timeout=10
        )
        assert response.status_code == 302, (response.status_code, response.text)
        return response.headers["Location"]

    # ---- WSGI ------------------------------------------------------------------------------
    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        headers = {"Host": environ.get("HTTP_HOST", "")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        if environ.get("HTTP_AUTHORIZATION"):
            headers["Authorization"] = environ["HTTP_AUTHORIZATION"]
        try:
            oauth = dict(OAuth1Request(method, url, body, headers).oauth_params)
        except (ValueError, OAuth1Error):
            oauth = {}
        record = RecordedRequest(
            method, path, url, headers, body, oauth, self._secret_of(oauth.get("oauth_token"))
        )
        self.requests.append(record)
        status, payload, response_headers = self.route(method, path, (method, url, body, headers))
        record.status = status
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", list(response_headers))
        return [payload.encode() if isinstance(payload, str) else payload]

    def _secret_of(self, token: str | None) -> str:
        credential = self.temporary.get(token or "") or self.tokens.get(token or "")
        return credential["oauth_token_secret"] if credential else ""

    def route(self, method: str, path: str, request: tuple) -> tuple[int, Any, list[tuple[str, str]]]:
        server = self.authorization_server
        if path == "/oauth/request_token":
            status, payload, headers = server.create_temporary_credentials_response(request)
            if status == 200:
                values = [(k, v) for k, v in parse_qsl(payload) if k != "oauth_callback_confirmed"]
                confirmed = self.knobs.get("callback_confirmed", "true")
                if confirmed is not None:
                    values.append(("oauth_callback_confirmed", confirmed))
                payload = urlencode(values)
            return status, payload, headers
        if path == "/oauth/authorize":
            params = dict(parse_qsl(urlsplit(request[1]).query))
            try:
                return server.create_authorization_response(request, grant_user=params.get("login"))
            except OAuth1Error as error:
                return server.handle_error_response(error)
        if path == "/oauth/access_token":
            status, payload, headers = server.create_token_response(request)
            if status == 200:
                token = dict(parse_qsl(payload))["oauth_token"]
                user = self.users[self.tokens[token]["user"]]
                payload += "&" + urlencode({"user_id": str(user["id"]), "screen_name": user["screen_name"]})
            return status, payload, headers
        if path == PROFILE_PATH:
            try:
                checked = self.protector.validate_request(*request)
            except OAuth1Error as error:
                return self.authorization_server.handle_error_response(error)
            user = dict(self.users[checked.credential["user"]])
            user["id_str"] = str(user["id"])
            return 200, json.dumps(user), [("Content-Type", "application/json; charset=utf-8")]
        return 404, "not found", [("Content-Type", "text/plain")]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


class _Store:
    """What both of Authlib's server classes need: clients and nonces."""

    def __init__(self, provider: OAuth1Provider) -> None:
        self.provider = provider

    def get_client_by_id(self, client_id: str) -> Consumer | None:
        return self.provider.consumers.get(client_id)

    def exists_nonce(self, nonce: str, request: OAuth1Request) -> bool:
        # RFC 5849 3.3: unique per timestamp, client credentials and token combination.
        key = (nonce, request.timestamp or "", request.client_id or "", request.token or "")
        if key in self.provider.nonces:
            return True
        self.provider.nonces.add(key)
        return False


class _Server(_Store, AuthorizationServer):
    def create_oauth1_request(self, request: Any) -> OAuth1Request:
        return request if isinstance(request, OAuth1Request) else OAuth1Request(*request)

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> tuple[int, Any, list]:
        return status_code, url_encode(payload) if isinstance(payload, list) else payload, list(headers)

    def create_temporary_credential(self, request: OAuth1Request) -> TemporaryCredential:
        credential = TemporaryCredential(
            oauth_token=secrets.token_urlsafe(16),
            oauth_token_secret=secrets.token_urlsafe(24),
            client_id=request.client_id,
            oauth_callback=request.redirect_uri,
        )
        self.provider.temporary[credential["oauth_token"]] = credential
        return credential

    def get_temporary_credential(self, request: OAuth1Request) -> TemporaryCredential | None:
        return self.provider.temporary.get(request.token)

    def delete_temporary_credential(self, request: OAuth1Request) -> None:
        self.provider.temporary.pop(request.token, None)

    def create_authorization_verifier(self, request: OAuth1Request) -> str:
        verifier = secrets.token_urlsafe(16)
        request.credential["oauth_verifier"] = verifier
        request.credential["user"] = request.user
        return verifier

    def create_token_credential(self, request: OAuth1Request) -> TemporaryCredential:
        credential = TemporaryCredential(
            oauth_token=secrets.token_urlsafe(16),
            oauth_token_secret=secrets.token_urlsafe(24),
            client_id=request.client_id,
            user=request.credential["user"],
        )
        self.provider.tokens[credential["oauth_token"]] = credential
        return credential


class _Protector(_Store, ResourceProtector):
    def get_token_credential(self, request: OAuth1Request) -> TemporaryCredential | None:
        return self.provider.tokens.get(request.token)
