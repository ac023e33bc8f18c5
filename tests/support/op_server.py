"""Run the local OpenID Provider (``tests/op/server.mjs``, npm ``oidc-provider``) from Python.

Plain helpers, no pytest fixtures and no Django: the project's conftest wraps them.

* :func:`ensure_op_installed` installs the OP's npm packages from the lock file when needed.
* :class:`OPServer` starts/stops one OP process on 127.0.0.1 and drives its ``/__test__/`` API.
* :func:`sign_in_with_requests` / :func:`sign_out_with_requests` walk the OP's pages with a
  :class:`requests.Session` (a browser without a browser).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin

import requests

OP_DIR = Path(__file__).resolve().parent.parent / "op"
SERVER_JS = OP_DIR / "server.mjs"
READY_PREFIX = "OP READY "
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

__all__ = [
    "OP_DIR",
    "OPServer",
    "OPServerError",
    "SignInError",
    "ensure_op_installed",
    "sign_in_with_requests",
    "sign_out_with_requests",
]


class OPServerError(RuntimeError):
    """The OP could not be installed, started or controlled."""


class SignInError(RuntimeError):
    """A sign-in or sign-out walk through the OP's pages did not end where expected."""


# --------------------------------------------------------------------------- install


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise OPServerError(
            f"`{name}` was not found on PATH: the end-to-end tests need Node.js (>= 20) and npm "
            f"to run the local OpenID Provider in {OP_DIR}."
        )
    return path


def _installed_version() -> str | None:
    manifest = OP_DIR / "node_modules" / "oidc-provider" / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _locked_version() -> str | None:
    try:
        lock = json.loads((OP_DIR / "package-lock.json").read_text())
        return lock["packages"]["node_modules/oidc-provider"]["version"]
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialise concurrent installs (e.g. pytest-xdist workers) on this machine."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux
        yield
        return
    lock_path = Path(tempfile.gettempdir()) / "django-sso-op-npm.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_op_installed(timeout: float = 300.0) -> Path:
    """Run ``npm ci`` in ``tests/op`` unless the locked ``oidc-provider`` is installed.

    Returns the path of ``tests/op``. Raises :class:`OPServerError` with npm's output when
    node/npm are missing or the install fails.
    """
    _require_tool("node")
    locked = _locked_version()
    if locked is None:
        raise OPServerError(f"{OP_DIR / 'package-lock.json'} is missing or has no oidc-provider")
    if _installed_version() == locked:
        return OP_DIR
    npm = _require_tool("npm")
    with _install_lock():
        if _installed_version() == locked:
            return OP_DIR
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=OP_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or _installed_version() != locked:
            raise OPServerError(
                f"`npm ci` in {OP_DIR} failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
    return OP_DIR


# --------------------------------------------------------------------------- server


class OPServer:
    """One local OpenID Provider process, configured from a dict (see ``tests/op/README.md``).

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with OPServer({"clients": [...], "accounts": {...}, "scopes": [...]}) as op:
            requests.get(op.well_known_url)
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        startup_timeout: float = 20.0,
        debug: bool | None = None,
        install: bool = True,
    ) -> None:
        self.config: dict[str, Any] = dict(config or {})
        self.startup_timeout = startup_timeout
        self.debug = os.environ.get("OP_DEBUG") == "1" if debug is None else debug
        self.install = install
        self.base_url = ""
        self.issuer = ""
        self.port = 0
        self.startup_seconds = 0.0
        self.last_log = ""
        self._proc: subprocess.Popen[str] | None = None
        self._tmpdir: Path | None = None
        self._log_handle: Any = None
        self._http = requests.Session()

    # -- lifecycle

    def start(self) -> Self:
        """Start the process and wait (at most ``startup_timeout`` s) for its READY line."""
        if self._proc is not None:
            raise OPServerError("OP already started")
        if self.install:
            ensure_op_installed()
        node = _require_tool("node")
        started = time.monotonic()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="django-sso-op-"))
        config_path = self._tmpdir / "config.json"
        config_path.write_text(json.dumps(self.config, indent=2))
        self._log_handle = (self._tmpdir / "op.log").open("w+")
        env = {**os.environ, "OP_EXIT_ON_STDIN_EOF": "1", "OP_DEBUG": "1" if self.debug else "0"}
        self._proc = subprocess.Popen(
            [node, str(SERVER_JS), str(config_path)],
            cwd=OP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            env=env,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump_stdout, args=(lines,), daemon=True).start()
        deadline = started + self.startup_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                line = ""
            if line and line.startswith(READY_PREFIX):
                break
            if line is None or self._proc.poll() is not None:
                self._fail_start(f"exited with code {self._proc.wait()}")
            if time.monotonic() >= deadline:
                self._fail_start(f"printed no READY line within {self.startup_timeout:.0f} s")
        self.base_url = line[len(READY_PREFIX) :].strip()
        self.port = int(self.base_url.rsplit(":", 1)[1])
        issuer = str(self.config.get("issuer") or self.base_url)
        self.issuer = issuer.replace("{port}", str(self.port)).rstrip("/")
        served = self.health()["issuer"]
        if served != self.issuer:  # pragma: no cover - guards the two computations
            self._fail_start(f"serves issuer {served!r}, expected {self.issuer!r}")
        self.startup_seconds = time.monotonic() - started
        return self

    def _pump_stdout(self, lines: queue.Queue[str | None]) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _fail_start(self, reason: str) -> None:
        self.stop()
        raise OPServerError(f"the OpenID Provider {reason}; its log:\n{self.last_log[-6000:]}")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout`` s); keep its log."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._log_handle is not None:
            self.last_log = self.log_text()
            self._log_handle.close()
            self._log_handle = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._http.close()
        self._http = requests.Session()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """The OP's stderr so far (after :meth:`stop`: what it was at stop time)."""
        if self._log_handle is None:
            return self.last_log
        self._log_handle.flush()
        return (self._tmpdir / "op.log").read_text() if self._tmpdir else ""

    # -- URLs

    @property
    def well_known_url(self) -> str:
        """The discovery document's URL."""
        return f"{self.issuer}/.well-known/openid-configuration"

    def url(self, path: str) -> str:
        """An absolute URL on the OP for ``path`` (relative to the issuer, e.g. ``/jwks``)."""
        return f"{self.issuer}/{path.lstrip('/')}"

    def discovery(self) -> dict[str, Any]:
        """The OP's discovery document."""
        return self._call("GET", self.well_known_url)

    # -- test control API

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        if not self.running:
            raise OPServerError("the OpenID Provider is not running")
        resp = self._http.request(method, url, json=body, timeout=10)
        if resp.status_code >= 400:
            raise OPServerError(f"{method} {url} -> HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    def health(self) -> dict[str, Any]:
        """``GET /__test__/health``: ``{"status": "ok", "issuer": ..., "kids": [...]}``."""
        return self._call("GET", self.url("/__test__/health"))

    def set_account(self, login: str, claims: Mapping[str, Any]) -> None:
        """Create or replace an account (its claims are used from the next token on)."""
        self._call("PUT", self.url(f"/__test__/accounts/{login}"), dict(claims))

    def delete_account(self, login: str) -> None:
        """Remove an account: its sessions can no longer obtain tokens."""
        self._call("DELETE", self.url(f"/__test__/accounts/{login}"))

    def add_client(self, client: Mapping[str, Any]) -> dict[str, Any]:
        """Register (or replace) a client at runtime; returns its metadata as the OP sees it."""
        return self._call("POST", self.url("/__test__/clients"), dict(client))

    def rotate_keys(self, drop_old: bool = False) -> str:
        """Publish a new signing key first (it signs from now on); return its ``kid``."""
        return self._call("POST", self.url("/__test__/rotate-keys"), {"drop_old": drop_old})["kid"]


# --------------------------------------------------------------------------- driver


@dataclass
class _Form:
    action: str
    method: str
    attrs: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects forms with their action and named input values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = _Form(values.get("action", ""), values.get("method", "get"), values)
            self.forms.append(self._current)
        elif (
            tag == "input"
            and self._current is not None
            and values.get("name")
            and values.get("type", "text").lower() not in {"submit", "button", "checkbox", "radio"}
        ):
            self._current.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(resp: requests.Response) -> list[_Form]:
    parser = _FormParser()
    parser.feed(resp.text)
    for form in parser.forms:
        form.action = urljoin(resp.url, form.action or resp.url)
    return parser.forms


def _page_summary(resp: requests.Response) -> str:
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", resp.text, flags=re.S)
    return " ".join(text.split())[:400]


def _redirect_target(resp: requests.Response) -> str | None:
    if resp.status_code in REDIRECT_STATUSES and "Location" in resp.headers:
        return urljoin(resp.url, resp.headers["Location"])
    return None


def sign_in_with_requests(
    session: requests.Session,
    authorize_url: str,
    login: str,
    password: str = "pw",
    *,
    redirect_prefix: str,
    max_hops: int = 12,
    timeout: float = 10.0,
) -> str:
    """Walk an authorization request through the OP and return the redirect back to the RP.

    GETs ``authorize_url`` with ``session`` (cookies kept), follows redirects by hand, submits
    the OP's login form once with ``login``/``password`` when it is shown (a live OP session
    may make the sign-in silent), and returns the first redirect whose URL starts with
    ``redirect_prefix`` (the RP callback with ``code``/``state``/``iss``, or with ``error``)
    without requesting it. Raises :class:`SignInError` when the flow ends anywhere else.
    """
    method, url, data = "GET", authorize_url, None
    submitted = False
    for _ in range(max_hops):
        resp = session.request(method, url, data=data, allow_redirects=False, timeout=timeout)
        method, data = "GET", None
        target = _redirect_target(resp)
        if target is not None:
            if target.startswith(redirect_prefix):
                return target
            url = target
            continue
        if resp.status_code == 200 and "html" in resp.headers.get("Content-Type", ""):
            forms = _forms(resp)
            login_form = next((f for f in forms if "login" in f.fields), None)
            if login_form is not None:
                if submitted:
                    raise SignInError(f"the OP rejected the sign-in of {login!r}: {_page_summary(resp)}")
                method, url = "POST", login_form.action
                data = {**login_form.fields, "login": login, "password": password}
                submitted = True
                continue
            if any(f.action.startswith(redirect_prefix) for f in forms):
                raise SignInError("the OP answered with response_mode=form_post (unsupported)")
        raise SignInError(f"sign-in ended at {resp.url} with HTTP {resp.status_code}: {_page_summary(resp)}")
    raise SignInError(f"no redirect to {redirect_prefix} after {max_hops} hops (last: {url})")


def sign_out_with_requests(
    session: requests.Session,
    end_session_url: str,
    *,
    redirect_prefix: str | None = None,
    confirm: bool = True,
    max_hops: int = 8,
    timeout: float = 10.0,
) -> str:
    """Walk an RP-initiated logout through the OP, answering its confirmation form.

    ``confirm=True`` answers "Yes, sign me out" (the whole OP session ends, back-channel
    logout tokens are sent); ``False`` answers "No" (only this client's session ends).
    Returns the first redirect starting with ``redirect_prefix`` (the RP's
    post_logout_redirect_uri, not requested) or, when ``redirect_prefix`` is None, the URL
    of the OP page the walk ends on.
    """
    method, url, data = "GET", end_session_url, None
    submitted = False
    for _ in range(max_hops):
        resp = session.request(method, url, data=data, allow_redirects=False, timeout=timeout)
        method, data = "GET", None
        target = _redirect_target(resp)
        if target is not None:
            if redirect_prefix is not None and target.startswith(redirect_prefix):
                return target
            url = target
            continue
        if resp.status_code == 200 and not submitted:
            form = next((f for f in _forms(resp) if "xsrf" in f.fields), None)
            if form is not None:
                data = dict(form.fields)
                if confirm:
                    data["logout"] = "yes"
                else:
                    data.pop("logout", None)
                method, url, submitted = "POST", form.action, True
                continue
        if resp.status_code == 200 and redirect_prefix is None and submitted:
            return resp.url
        raise SignInError(f"sign-out ended at {resp.url} with HTTP {resp.status_code}: {_page_summary(resp)}")
    raise SignInError(f"sign-out did not finish after {max_hops} hops (last: {url})")
