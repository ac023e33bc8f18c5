"""Shared assertions for the RP-CASES tests: what "reject" means on the sign-in side, and no leaks.

A rejected callback: the expected status on the generic error page, nobody logged in, the flow
gone from the session, no further provider call for the flow, a ``code=sso...`` reason logged at
WARNING by ``django_sso``, and no token, code, secret or verifier in any log line.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from django_sso.internal.flow import SESSION_KEY
from tests.fakeop import FakeOP

#: Every JWT minted by the fake provider starts with base64url('{"'): a compact JWS in a log.
JWT_PREFIX = "eyJ"


def pending_flows(client: Any) -> dict[str, dict[str, Any]]:
    """Return the sign-in flows the browser's session holds, by state."""
    return dict(client.session.get(SESSION_KEY, {}))


def calls(op: FakeOP, path: str) -> list[Any]:
    """Return the requests ``op`` received at ``path`` (relative to its issuer)."""
    target = urlsplit(op.url(path)).path
    return [r for r in op.requests if r.path == target]


def provider_secrets(*ops: FakeOP) -> set[str]:
    """Return every secret value the providers issued or received: codes, tokens, verifiers, auth."""
    found: set[str] = set()
    for op in ops:
        found.add(op.client_secret)
        found.update(op.codes)
        found.update(getattr(op, "access_tokens", {}))
        found.update(getattr(op, "issued", []))
        for request in op.requests:
            found.update(
                v for k, v in request.form.items() if k in {"code", "code_verifier", "client_secret"}
            )
            auth = request.headers.get("Authorization", "")
            if auth:
                found.add(auth.split(" ", 1)[-1])
    return {s for s in found if s}


def flow_secrets(client: Any) -> set[str]:
    """Return the verifiers and nonces of the browser's pending flows (read them before the callback)."""
    return {
        value
        for record in pending_flows(client).values()
        for value in (record["code_verifier"], record["nonce"])
    }


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Return every captured record, message and traceback, as one string."""
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join([*lines, caplog.text])


def assert_no_secrets(text: str, secrets: Iterable[str], where: str = "log") -> None:
    """Fail when any secret value, or anything shaped like a JWT, appears in ``text``."""
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:4]}…) appears in the {where}"
    assert JWT_PREFIX not in text, f"a JWT appears in the {where}"


def assert_reason_logged(caplog: pytest.LogCaptureFixture, code: str) -> None:
    """Fail unless ``django_sso`` logged ``code=<code>`` at WARNING."""
    reasons = [
        r.getMessage() for r in caplog.records if r.name == "django_sso" and r.levelno == logging.WARNING
    ]
    assert any(f"code={code} " in f"{m} " for m in reasons), f"code={code} not logged at WARNING: {reasons}"


def assert_rejected(
    response: Any,
    client: Any,
    caplog: pytest.LogCaptureFixture,
    *,
    status: int,
    code: str,
    ops: Iterable[FakeOP] = (),
    state: str | None = None,
    token_calls: int = 0,
    userinfo_calls: int = 0,
    secrets: Iterable[str] = (),
) -> None:
    """Assert a sign-in callback was rejected the way RP-CASES defines it.

    ``token_calls``/``userinfo_calls`` are the totals the ``ops`` may have received (a check that
    failed before the code exchange allows none). ``state``, when given, must no longer name a
    pending flow. ``secrets`` are added to what the providers issued and received.
    """
    ops = list(ops)
    assert response.status_code == status, response.content[:500]
    assert "django_sso/error.html" in [t.name for t in response.templates]
    assert "no-store" in response["Cache-Control"]
    assert response.context["code"] == code
    assert "_auth_user_id" not in client.session
    if state is not None:
        assert state not in pending_flows(client)
    assert sum(len(calls(op, "/token")) for op in ops) == token_calls
    assert sum(len(calls(op, "/userinfo")) for op in ops) == userinfo_calls
    assert_reason_logged(caplog, code)
    assert_no_secrets(log_text(caplog), {*secrets, *provider_secrets(*ops)})


def with_params(url: str, *, drop: Iterable[str] = (), **changes: str) -> str:
    """Return ``url`` with query parameters dropped or replaced (single values)."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop]
    params = [(k, v) for k, v in params if k not in changes]
    params += list(changes.items())
    return urlunsplit(parts._replace(query=urlencode(params)))


def with_raw_query(url: str, extra: str) -> str:
    """Return ``url`` with ``extra`` (already encoded) appended to its query string."""
    parts = urlsplit(url)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def local(url: str) -> str:
    """Return the path and query of an absolute URL, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def begin(client: Any, slug: str = "honest", **data: str) -> str:
    """Start a sign-in with a POST (as the login button does); return the provider's authorize URL."""
    response = client.post(f"/sso/{slug}/login/", data)
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def query_of(url: str) -> dict[str, str]:
    """Return the (single-valued) query parameters of ``url``."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
