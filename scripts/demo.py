"""Run the example site against a real local OpenID Provider (npm oidc-provider).

Started by ``scripts/demo``. The provider listens on 127.0.0.1:9000 and is registered as the
Source ``local`` through its well-known URL, exactly as an operator would with
``manage.py sso_source``. ``--check`` signs in once over HTTP and exits (0 when it worked).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.op_server import OPServer, sign_in_with_requests

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "demo-site"
CLIENT_SECRET = "demo-site-secret-not-for-production"
#: The example site's API as a resource (RFC 8707): the provider's access tokens for it are JWTs.
API = "https://api.example.test"
SCOPES = "openid email profile groups roles"
ACCOUNTS = {
    "alice": {
        "sub": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "preferred_username": "alice",
        "groups": ["shop-managers"],
        "roles": ["app:manage_orders"],
    },
    "bob": {
        "sub": "bob",
        "email": "bob@example.com",
        "email_verified": True,
        "name": "Bob Builder",
        "given_name": "Bob",
        "family_name": "Builder",
        "preferred_username": "bob",
        "groups": [],
    },
}


def provider_config(site: str, op_port: int) -> dict:
    return {
        "port": op_port,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{site}/sso/local/callback/"],
                "post_logout_redirect_uris": [f"{site}/"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            }
        ],
        "accounts": ACCOUNTS,
        "scopes": [
            "openid",
            "email",
            "profile",
            "groups",
            "roles",
            "offline_access",
            "app:manage_orders",
            "app:manage_users",
        ],
        "resource": API,
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def prepare_site(env: dict[str, str], well_known: str) -> None:
    manage(env, "migrate", "--verbosity", "0")
    manage(
        env,
        "shell",
        "-c",
        (
            "from django.contrib.auth import get_user_model as g; U = g();"
            "U.objects.filter(username='admin').exists() or U.objects.create_superuser('admin', '', 'admin')"
        ),
    )
    options = [
        "--name",
        "Local provider",
        "--well-known",
        well_known,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--scopes",
        SCOPES,
        # Role mapping: "app:..." values of the roles claim are permissions (alice's opens
        # /shop/orders/); each provider group becomes a Django group "sso:<name>".
        "--permission-prefix",
        "app:",
        "--permission-claim",
        "roles",
        "--groups-claim",
        "groups",
        "--mirror-groups",
        "sso:",
        # Resource server: the provider's access tokens for the API authenticate /api/ calls.
        "--bearer-audience",
        API,
    ]
    exists = subprocess.run(
        [sys.executable, "manage.py", "sso_source", "list"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if re.search(r"^local\t", exists, re.M):
        manage(env, "sso_source", "update", "local", "--refetch", *options)
    else:
        manage(env, "sso_source", "create", "--slug", "local", *options)


def wait_for(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"demo: {url} did not come up")


def check_sign_in(site: str) -> None:
    """Sign in as alice the way a browser would and verify /whoami/."""
    browser = requests.Session()
    browser.get(f"{site}/", timeout=10)
    token = browser.cookies["csrftoken"]
    start = browser.post(
        f"{site}/sso/local/login/",
        data={"csrfmiddlewaretoken": token, "next": "/whoami/"},
        headers={"Referer": f"{site}/"},
        allow_redirects=False,
        timeout=10,
    )
    if start.status_code != 302:
        raise SystemExit(f"demo check: login start answered {start.status_code}")
    callback = sign_in_with_requests(
        requests.Session(), start.headers["Location"], "alice", redirect_prefix=f"{site}/sso/local/callback/"
    )
    done = browser.get(callback, allow_redirects=False, timeout=10)
    if done.status_code != 303:
        raise SystemExit(f"demo check: callback answered {done.status_code}")
    whoami = browser.get(f"{site}/whoami/", timeout=10).json()
    if not whoami["authenticated"] or whoami["username"] != "alice":
        raise SystemExit(f"demo check: not signed in: {whoami}")
    print(f"demo check: signed in as {whoami['username']} ({whoami['email']}) through {whoami['source']}")
    orders = browser.get(f"{site}/shop/orders/", timeout=10).status_code
    if "shop.manage_orders" not in whoami["permissions"] or orders != 200:
        raise SystemExit(f"demo check: role mapping did not grant shop.manage_orders: {whoami}, {orders}")
    print(f"demo check: permissions {', '.join(whoami['permissions'])}; groups {', '.join(whoami['groups'])}")


def check_bearer(site: str, op: OPServer) -> None:
    """Call the API with a client-credentials token, as the README's curl lines do."""
    token = requests.post(
        op.url("/token"),
        data={"grant_type": "client_credentials", "scope": "app:manage_orders"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    whoami = requests.get(f"{site}/api/whoami/", headers=headers, timeout=10).json()
    orders = requests.get(f"{site}/api/orders/", headers=headers, timeout=10).status_code
    if whoami.get("principal") != "service" or orders != 200:
        raise SystemExit(f"demo check: bearer token refused: {whoami}, {orders}")
    print(f"demo check: bearer token accepted as {whoami['username']} with {', '.join(whoami['scopes'])}")


def curl_lines(site: str, op: OPServer) -> str:
    return (
        f"  API with a bearer token:\n"
        f"    TOKEN=$(curl -s -u {CLIENT_ID}:{CLIENT_SECRET} -d grant_type=client_credentials \\\n"
        f"      -d scope=app:manage_orders {op.url('/token')} | python3 -c 'import json,sys; "
        f'print(json.load(sys.stdin)["access_token"])\')\n'
        f'    curl -H "Authorization: Bearer $TOKEN" {site}/api/whoami/\n'
        f'    curl -H "Authorization: Bearer $TOKEN" {site}/api/orders/\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--op-port", type=int, default=9000)
    parser.add_argument("--check", action="store_true", help="sign in once over HTTP, then stop")
    args = parser.parse_args()
    site = f"http://127.0.0.1:{args.port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DEBUG": os.environ.get("DEBUG", "True"),
        "DJANGO_SSO_ALLOWED_LOCAL_HOSTS": "127.0.0.1",
        "DJANGO_SSO_REDIRECT_URI_BASE": site,
    }
    if args.check:
        env.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'demo-check.sqlite3'}")
        Path(env["DATABASE_URL"].removeprefix("sqlite:///")).unlink(missing_ok=True)
    with OPServer(provider_config(site, args.op_port)) as op:
        prepare_site(env, op.well_known_url)
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"],
            cwd=ROOT,
            env=env,
        )
        try:
            wait_for(f"{site}/")
            if args.check:
                check_sign_in(site)
                check_bearer(site, op)
                return
            print(
                f"\n  django_sso demo: open {site}/ and sign in as alice (any password); "
                f"bob has no shop permissions.\n  Admin: {site}/admin/ (admin / admin). Ctrl-C stops.\n"
                f"{curl_lines(site, op)}"
            )
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
