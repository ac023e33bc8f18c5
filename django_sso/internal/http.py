"""The one way django_sso talks to providers: timeouts, no redirects, a byte cap, https only.

Every outbound session (plain ``requests`` or Authlib's) goes through :func:`prepare_session`,
which installs a response hook that refuses redirects (RFC 9700 4.12: ``requests`` would re-POST
a token request body on 307/308) and reads at most ``MAX_RESPONSE_BYTES``. The adapter's
``configure_http_session`` hook runs last: it is the seam for proxies, CA bundles and test
transports.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from django_sso.app_settings import app_settings
from django_sso.exceptions import ConfigurationError, ProviderError

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def _refuse_redirect_and_cap_body(response: requests.Response, **kwargs: Any) -> requests.Response:
    if response.status_code in _REDIRECT_STATUSES or response.is_redirect:
        response.close()
        raise ProviderError(
            "sso.http.redirect_refused", f"{response.status_code} from {_origin(response.url)}"
        )
    limit = app_settings.MAX_RESPONSE_BYTES
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        response.close()
        raise ProviderError("sso.http.too_large", f"declared {declared} bytes")
    if not response._content_consumed:
        body = response.raw.read(limit + 1, decode_content=True) or b""
        if len(body) > limit:
            response.close()
            raise ProviderError("sso.http.too_large", f"more than {limit} bytes")
        response._content = body
        response._content_consumed = True
    return response


class _TimeoutSession(requests.Session):
    """A session whose requests default to the configured connect/read timeouts."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", (app_settings.CONNECT_TIMEOUT, app_settings.READ_TIMEOUT))
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)


def prepare_session(session: requests.Session) -> requests.Session:
    """Install the safety hooks on ``session`` and hand it to the adapter's hook."""
    from django_sso.adapter import get_adapter

    session.max_redirects = 0
    session.trust_env = False
    session.hooks["response"] = [_refuse_redirect_and_cap_body]
    get_adapter().configure_http_session(session)
    return session


def new_session() -> requests.Session:
    """Return a prepared plain session with default timeouts."""
    session = prepare_session(_TimeoutSession())
    # Provider cookies are never kept: a pooled session serves every user of this thread.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


_pool = threading.local()
_pool_generation = [0]


def pooled_session() -> requests.Session:
    """Return this thread's prepared session, so calls to a provider reuse their connection.

    Keep-alive spares a TCP and TLS handshake per call on the hot path (the callback's token and
    UserInfo requests). The session is rebuilt when the adapter setting changes or after
    :func:`reset_pool`.
    """
    key = (_pool_generation[0], app_settings.ADAPTER)
    session = getattr(_pool, "session", None)
    if session is None or _pool.key != key:
        if session is not None:
            session.close()
        _pool.session, _pool.key = new_session(), key
    return _pool.session


def reset_pool() -> None:
    """Make every thread build a fresh pooled session (after the adapter's transport changed)."""
    _pool_generation[0] += 1


def send(
    method: str, url: str, *, kind: str, ok: tuple[int, ...] | None = (200,), **kwargs: Any
) -> requests.Response:
    """Call a provider over this thread's pooled session; return the response.

    Network failures become :class:`ProviderError` coded ``<kind>.timeout``, ``<kind>.tls`` or
    ``<kind>.unreachable``; a status outside ``ok`` (unless ``ok`` is None) ``<kind>.status``.
    """
    check_url(url)
    try:
        response = pooled_session().request(method, url, allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise ProviderError(f"{kind}.timeout", _origin(url)) from exc
    except requests.exceptions.SSLError as exc:
        raise ProviderError(f"{kind}.tls", _origin(url)) from exc
    except requests.RequestException as exc:
        raise ProviderError(f"{kind}.unreachable", f"{_origin(url)}: {type(exc).__name__}") from exc
    if ok is not None and response.status_code not in ok:
        raise ProviderError(f"{kind}.status", str(response.status_code))
    return response


def request_json(
    method: str, url: str, *, expected_status: tuple[int, ...] = (200,), **kwargs: Any
) -> dict[str, Any]:
    """Call a provider endpoint and return its JSON object body.

    Raise :class:`ProviderError` (with a code naming what went wrong) on a network failure, a
    timeout, a redirect, a status outside ``expected_status``, a non-JSON or non-object body.
    The body itself never goes into the error.
    """
    return parse_json_object(send(method, url, kind="sso.http", ok=expected_status, **kwargs))


def parse_json(response: requests.Response) -> Any:
    """Return the response body as JSON (any value), or raise :class:`ProviderError`."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type and not (content_type == "application/json" or content_type.endswith("+json")):
        raise ProviderError("sso.http.not_json", f"content type {content_type!r}")
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise ProviderError("sso.http.not_json", "body is not JSON") from exc


def parse_json_object(response: requests.Response) -> dict[str, Any]:
    """Return the response body as a JSON object, or raise :class:`ProviderError`."""
    data = parse_json(response)
    if not isinstance(data, dict):
        raise ProviderError("sso.http.not_json", "body is not a JSON object")
    return data


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _is_local_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not address.is_global


def check_url(url: str, *, resolve: bool = False) -> None:
    """Refuse a provider URL that is not https, or that points at a private address.

    Hosts in ``DJANGO_SSO_ALLOWED_LOCAL_HOSTS`` are exempt. With ``resolve``, the host name is
    also resolved and every address checked (done when a source is saved, not per request), so a
    name that points at 169.254.169.254 or 10.0.0.1 is refused too (CFG-03, SSRF).
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigurationError("sso.config.bad_url", "URL has no host")
    if host in {h.lower() for h in app_settings.ALLOWED_LOCAL_HOSTS}:
        if parts.scheme not in {"http", "https"}:
            raise ConfigurationError("sso.config.bad_url", f"scheme {parts.scheme!r}")
        return
    if parts.scheme != "https":
        raise ConfigurationError("sso.config.not_https", f"{_origin(url)} is not https")
    if host == "localhost" or host.endswith(".localhost") or _is_local_address(host):
        raise ConfigurationError("sso.config.private_address", f"{host} is a local address")
    if resolve:
        from django_sso.adapter import get_adapter

        try:
            addresses = get_adapter().resolve_host(host, parts.port or 443)
        except OSError as exc:
            raise ConfigurationError("sso.config.unresolvable", host) from exc
        if any(_is_local_address(address) for address in addresses):
            raise ConfigurationError("sso.config.private_address", f"{host} resolves to a local address")
