"""Shared setup of the browser tests: Debian's chromium under Playwright, and a provider client
registered for pytest-django's live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import E2E_CLIENT_SECRET

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: Any) -> Any:
    """Start Debian's chromium (Playwright's own browser download does not work here)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def register_live_client(
    oidc_provider: Any, live_server: Any, settings: Any, name: str, **metadata: Any
) -> str:
    """Register a provider client whose redirect URI is the live server's; return its client id."""
    settings.DJANGO_SSO_REDIRECT_URI_BASE = live_server.url
    client_id = f"{name}-{live_server.url.rsplit(':', 1)[-1]}"
    oidc_provider.add_client(
        {
            "client_id": client_id,
            "client_secret": E2E_CLIENT_SECRET,
            "redirect_uris": [f"{live_server.url}/sso/local/callback/"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
            **metadata,
        }
    )
    return client_id
