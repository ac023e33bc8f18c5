"""The scriptable misbehaving provider (RP-CASES §5): in-process, several issuers, a recorder.

``FakeNetwork`` routes every outbound request of django_sso (through the adapter's
``configure_http_session`` seam) to in-process ``FakeOP`` instances and a ``collector`` host,
returning real ``requests`` responses, so 3xx, oversize bodies and timeouts are exercised
through the library's own HTTP code. Knobs live in ``op.scenario`` (a dict, reset per test).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.response import HTTPResponse

from django_sso.adapter import DefaultSSOAdapter

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
CLIENT_ID = "rp-client"
CLIENT_SECRET = "rp-secret-0123456789-0123456789-abcdef"
REDIRECT_URI = "http://testserver/sso/honest/callback/"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


_KEY_POOL: list[rsa.RSAPrivateKey] = []


def pooled_rsa_key(index: int) -> rsa.RSAPrivateKey:
    """Return a cached RSA key (generating 2048-bit keys is slow; tests reuse a small pool)."""
    while len(_KEY_POOL) <= index:
        _KEY_POOL.append(new_rsa_key())
    return _KEY_POOL[index]


@dataclass
class SigningKey:
    kid: str | None
    private: Any
    alg: str = "RS256"

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.alg[:2] in {"RS", "PS"} else jwt.algorithms.ECAlgorithm
        jwk = json.loads(algo.to_jwk(self.private.public_key()))
        jwk.update({"use": "sig", "alg": self.alg})
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def ec_key(kid: str = "ec1") -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def sign_compact(header: dict[str, Any], claims: Any, signer: Any) -> str:
    """Build a compact JWS by hand: ``signer(signing_input) -> bytes`` (may be anything)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    return f"{head}.{body}.{b64url(signer(signing_input))}"


def hmac_signer(secret: bytes) -> Any:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict[str, str]
    body: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body).items()}

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}


@dataclass
class FakeOP:
    """One issuer at ``base`` (e.g. ``https://op.example/honest``) with its keys, users, knobs."""

    base: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    key_index: int = 0
    scenario: dict[str, Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every token string this OP handed out (access/refresh/ID tokens, signed UserInfo), so tests
    #: can assert none of them reaches a log line.
    issued: list[str] = field(default_factory=list)
    #: Refresh tokens handed out: token -> {"user", "scope", "claims", "grant", "used", "revoked"}.
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = [SigningKey(f"{self.base.rsplit('/', 1)[-1]}-k1", pooled_rsa_key(self.key_index))]
        self.users.setdefault(
            "alice",
            {
                "sub": "alice-sub",
                "email": "alice@example.com",
                "email_verified": True,
                "name": "Alice Example",
                "given_name": "Alice",
                "family_name": "Example",
                "preferred_username": "alice",
            },
        )
        self.users.setdefault(
            "bob",
            {
                "sub": "bob-sub",
                "email": "bob@example.com",
                "email_verified": True,
                "preferred_username": "bob",
            },
        )

    # ---- metadata -------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self.base

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "userinfo_endpoint": self.url("/userinfo"),
            "jwks_uri": self.url("/jwks"),
            "end_session_endpoint": self.url("/end_session"),
            "response_types_supported": ["code", "token", "id_token token", "code id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "scopes_supported": ["openid", "email", "profile"],
        }
        doc.update(self.scenario.get("discovery", {}))
        return doc

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    # ---- tokens ---------------------------------------------------------------------------
    def id_claims(self, user: str = "alice", nonce: str | None = None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            **self.users[user],
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def mint(
        self,
        claims: Any,
        header: dict[str, Any] | None = None,
        key: SigningKey | None = None,
        signer: Any = None,
    ) -> str:
        """Sign ``claims`` with this OP's first key (or ``key``/``signer``); header overrides merge."""
        key = key or self.keys[0]
        head: dict[str, Any] = {"alg": key.alg, "typ": "JWT"}
        if key.kid is not None:
            head["kid"] = key.kid
        head.update(header or {})
        head = {k: v for k, v in head.items() if v is not _DROP}
        if signer is None:
            algo = jwt.get_algorithm_by_name(head["alg"] if head["alg"] in {"RS256", "ES256"} else key.alg)
            signer = lambda data: algo.sign(data, key.private)  # noqa: E731
        return sign_compact(head, claims, signer)

    # ---- endpoints ------------------------------------------------------------------------
    def authorize(self, url: str, user: str = "alice") -> str:
        """Play the browser's visit to /authorize with auto-consent; return the redirect URL."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        self.requests.append(Recorded("GET", url, {}, ""))
        knobs = self.scenario.get("authorize", {})
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"params": params, "user": user, "used": False}
        answer: dict[str, str] = {"code": code, "state": params.get("state", "")}
        if "error" in knobs:
            answer = {"error": knobs["error"], "state": params.get("state", "")}
            if "error_description" in knobs:
                answer["error_description"] = knobs["error_description"]
        if knobs.get("iss", self.issuer) is not None:
            answer["iss"] = knobs.get("iss", self.issuer)
        answer.update(knobs.get("extra", {}))
        for name in knobs.get("drop", []):
            answer.pop(name, None)
        return f"{params['redirect_uri']}?{urlencode(answer)}{knobs.get('suffix', '')}"

    def handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body or b""
        body_text = body.decode() if isinstance(body, bytes) else body
        self.requests.append(
            Recorded(request.method or "", request.url or "", dict(request.headers), body_text)
        )
        path = urlsplit(request.url).path[len(urlsplit(self.base).path) :]
        override = self.scenario.get("respond", {}).get(path)
        if override is not None:
            return override(request) if callable(override) else override
        if path == "/.well-known/openid-configuration":
            return _json(self.discovery())
        if path == "/jwks":
            return _json(self.scenario.get("jwks_body") or self.jwks())
        if path == "/token":
            return self.token(Recorded("POST", request.url or "", dict(request.headers), body_text))
        if path == "/userinfo":
            return self.userinfo(dict(request.headers))
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def token(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        form = req.form
        if form.get("grant_type") == "refresh_token":
            return self.refresh(form)
        record = self.codes.get(form.get("code", ""))
        if record is None or record["used"]:
            return _json({"error": "invalid_grant"}, 400)
        record["used"] = True
        params = record["params"]
        verifier = form.get("code_verifier")
        if self.scenario.get("pkce", "enforce") == "enforce" and "code_challenge" in params:
            expected = b64url(hashlib.sha256((verifier or "").encode()).digest())
            if expected != params["code_challenge"]:
                return _json({"error": "invalid_grant"}, 400)
        access_token = "at-" + secrets.token_urlsafe(24)
        self.access_tokens = getattr(self, "access_tokens", {})
        self.access_tokens[access_token] = record["user"]
        claims = self.id_claims(record["user"], nonce=params.get("nonce"))
        # Overrides may also replace the flow's nonce (wrong, null) or DROP any claim.
        claims.update(self.scenario.get("id_token", {}))
        claims = {k: v for k, v in claims.items() if v is not _DROP}
        response: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": params.get("scope", ""),
            "id_token": self.mint(claims, self.scenario.get("id_token_header")),
        }
        if "id_token_raw" in self.scenario:
            response["id_token"] = self.scenario["id_token_raw"](self, claims)
        if "offline_access" in params.get("scope", "").split():
            grant = secrets.token_urlsafe(8)
            response["refresh_token"] = self._new_refresh_token(
                record["user"], params["scope"], claims, grant
            )
        response.update(self.scenario.get("token", {}))
        response = {k: v for k, v in response.items() if v is not _DROP}
        self.issued.extend(v for k, v in response.items() if k.endswith("token") and isinstance(v, str) and v)
        return _json(response)

    def _new_refresh_token(self, user: str, scope: str, claims: dict[str, Any], grant: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens[token] = {
            "user": user,
            "scope": scope,
            "claims": {k: v for k, v in claims.items() if k not in {"nonce", "iat", "exp"}},
            "grant": grant,
            "used": False,
            "revoked": False,
        }
        return token

    def refresh(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The refresh_token grant. Knobs in ``scenario["refresh"]``: ``error`` (answer it),
        ``rotate`` (default True: a new refresh token each time, the old one spent; a spent one
        used again revokes the whole grant, as oidc-provider does), ``id_token`` (claim
        overrides, DROP to remove), ``id_token_header``, ``key`` (sign with another key),
        ``no_id_token``, ``token`` (response overrides), ``expires_in``."""
        knobs = self.scenario.get("refresh", {})
        if "error" in knobs:
            return _json({"error": knobs["error"]}, 400)
        record = self.refresh_tokens.get(form.get("refresh_token", ""))
        if record is None or record["revoked"]:
            return _json({"error": "invalid_grant"}, 400)
        if record["used"]:
            for other in self.refresh_tokens.values():
                if other["grant"] == record["grant"]:
                    other["revoked"] = True
            return _json({"error": "invalid_grant"}, 400)
        if "scope" in form and not set(form["scope"].split()) <= set(record["scope"].split()):
            return _json({"error": "invalid_scope"}, 400)
        rotate = knobs.get("rotate", True)
        access_token = "at-" + secrets.token_urlsafe(24)
        self.access_tokens = getattr(self, "access_tokens", {})
        self.access_tokens[access_token] = record["user"]
        now = int(time.time())
        claims = {**record["claims"], "iat": now, "exp": now + 300, **knobs.get("id_token", {})}
        claims = {k: v for k, v in claims.items() if v is not _DROP}
        response: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": knobs.get("expires_in", 300),
            "scope": form.get("scope", record["scope"]),
        }
        if not knobs.get("no_id_token"):
            response["id_token"] = self.mint(claims, knobs.get("id_token_header"), key=knobs.get("key"))
        if rotate:
            record["used"] = True
            response["refresh_token"] = self._new_refresh_token(
                record["user"], record["scope"], record["claims"], record["grant"]
            )
        response.update(knobs.get("token", {}))
        response = {k: v for k, v in response.items() if v is not _DROP}
        self.issued.extend(v for k, v in response.items() if k.endswith("token") and isinstance(v, str) and v)
        return _json(response)

    def revoke_refresh_tokens(self, user: str = "alice") -> None:
        """Revoke every refresh token of ``user`` (as an administrator or the user would)."""
        for record in self.refresh_tokens.values():
            if record["user"] == user:
                record["revoked"] = True

    def refresh_requests(self) -> list[Recorded]:
        """The refresh_token grant requests received so far."""
        return [
            r
            for r in self.requests
            if r.path.endswith("/token") and r.form.get("grant_type") == "refresh_token"
        ]

    def end_session(self, url: str) -> str:
        """Play the browser's visit to the end-session endpoint; return the redirect back.

        Knob ``scenario["end_session"]["state"]``: a value to send instead of the RP's, or DROP.
        """
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        self.requests.append(Recorded("GET", url, {}, ""))
        state = self.scenario.get("end_session", {}).get("state", params.get("state"))
        answer = {"state": state} if state is not None and state is not _DROP else {}
        target = params["post_logout_redirect_uri"]
        return f"{target}?{urlencode(answer)}" if answer else target

    def logout_claims(self, user: str | None = "alice", **overrides: Any) -> dict[str, Any]:
        """Claims of a valid Logout Token (BCL 2.4) for ``user``; overrides may DROP any claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "events": {BACKCHANNEL_EVENT: {}},
        }
        if user is not None:
            claims["sub"] = self.users[user]["sub"]
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def logout_token(
        self, user: str | None = "alice", header: dict[str, Any] | None = None, **overrides: Any
    ) -> str:
        """A signed Logout Token (``typ: logout+jwt``) for ``user``, see :meth:`logout_claims`."""
        return self.mint(self.logout_claims(user, **overrides), {"typ": "logout+jwt", **(header or {})})

    def userinfo(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        user = getattr(self, "access_tokens", {}).get(token)
        if user is None:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b""
        claims = {**self.users[user], **self.scenario.get("userinfo", {})}
        claims = {k: v for k, v in claims.items() if v is not _DROP}
        if "userinfo_jwt" in self.scenario:
            signed = self.scenario["userinfo_jwt"](self, claims)
            self.issued.append(signed)
            return 200, {"Content-Type": "application/jwt"}, signed.encode()
        return _json(claims)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: Use as a knob value to remove a claim, header or field.
_DROP = DROP = _Drop()


def _json(data: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


class FakeNetwork(BaseAdapter):
    """A transport adapter that answers from in-process OPs; unknown hosts are refused."""

    def __init__(self, *ops: FakeOP) -> None:
        super().__init__()
        self.ops = list(ops)
        self.collector: list[Recorded] = []
        self.failures: dict[str, Exception] = {}

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        for prefix, exc in self.failures.items():
            if url.startswith(prefix):
                raise exc
        if urlsplit(url).hostname == "collector.example":
            body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
            self.collector.append(Recorded(request.method or "", url, dict(request.headers), body))
            return self._response(request, 200, {"Content-Type": "text/plain"}, b"collected")
        for op in sorted(self.ops, key=lambda o: -len(o.base)):
            if url.startswith(op.base + "/"):
                return self._response(request, *op.handle(request))
        raise requests.ConnectionError(f"no fake host for {url}")

    def _response(self, request: requests.PreparedRequest, status: int, headers: dict[str, str], body: bytes):
        raw = HTTPResponse(
            body=io.BytesIO(body), headers=headers, status=status, preload_content=False, decode_content=False
        )
        return HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        """Nothing to release."""


class FakeNetworkAdapter(DefaultSSOAdapter):
    """Test adapter: mount the fake network on every outbound session; fake DNS."""

    network: FakeNetwork | None = None
    dns: dict[str, list[str]] = {}

    def configure_http_session(self, session: requests.Session) -> None:
        if self.network is not None:
            session.mount("https://", self.network)
            session.mount("http://", self.network)

    def resolve_host(self, host: str, port: int) -> list[str]:
        return self.dns.get(host, ["93.184.216.34"])
