"""``manage.py sso_source``: create/update/list/refresh/delete, and a one-line reason on every error."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from django_sso.models import Source
from tests.conftest import make_source
from tests.fakeop import CLIENT_ID, CLIENT_SECRET
from tests.test_discovery import WELL_KNOWN, snapshot, well_known_fetches

ROOT = Path(__file__).resolve().parent.parent


def sso_source(*args: str) -> str:
    out = StringIO()
    call_command("sso_source", *args, stdout=out)
    return out.getvalue()


def create_args(op, *extra: str) -> list[str]:
    return [
        "create",
        "--slug",
        "honest",
        "--name",
        "Honest",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--well-known",
        op.url(WELL_KNOWN),
        *extra,
    ]


def command_error(*args: str) -> str:
    """Run the command expecting a failure; return its reason, checked to be one line."""
    with pytest.raises(CommandError) as caught:
        sso_source(*args)
    assert caught.value.returncode != 0
    reason = str(caught.value)
    assert reason
    assert "\n" not in reason
    return reason


def test_create_with_well_known_fills_the_source_from_discovery(db, op):
    out = sso_source(*create_args(op))
    assert out == f"saved honest: oidc issuer {op.issuer}\n"
    source = Source.objects.get()
    assert source.issuer == op.issuer
    assert source.authorization_url == op.url("/authorize")
    assert source.token_url == op.url("/token")
    assert source.userinfo_url == op.url("/userinfo")
    assert source.jwks_url == op.url("/jwks")
    assert source.end_session_url == op.url("/end_session")
    assert source.iss_parameter_supported is True
    assert source.provider_metadata == op.discovery()
    assert source.last_discovery_at is not None
    assert source.client_secret == CLIENT_SECRET
    assert well_known_fetches(op) == 1


def test_create_with_options_and_params(db, op):
    sso_source(
        *create_args(
            op,
            "--scopes",
            "openid email",
            "--param",
            "prompt=select_account",
            "--param",
            "hd=example.com",
            "--no-allow-signup",
            "--display-order",
            "3",
        )
    )
    source = Source.objects.get()
    assert source.scope_list == ["openid", "email"]
    assert source.extra_authorize_params == {"prompt": "select_account", "hd": "example.com"}
    assert source.allow_signup is False
    assert source.display_order == 3


def test_create_an_oauth2_source_by_hand(db, network):
    sso_source(
        "create",
        "--slug",
        "github",
        "--name",
        "GitHub",
        "--protocol",
        "oauth2",
        "--client-id",
        "gh",
        "--authorization-url",
        "https://github.example/login/oauth/authorize",
        "--token-url",
        "https://github.example/login/oauth/access_token",
        "--userinfo-url",
        "https://api.github.example/user",
        "--scopes",
        "read:user",
    )
    source = Source.objects.get()
    assert source.protocol == "oauth2"
    assert source.issuer == ""
    assert source.last_discovery_at is None


def test_update_changes_fields_without_fetching_again_or_losing_the_secret(db, op):
    sso_source(*create_args(op))
    sso_source("update", "honest", "--name", "Renamed", "--button-label", "Go")
    source = Source.objects.get()
    assert (source.name, source.button_label) == ("Renamed", "Go")
    assert source.client_secret == CLIENT_SECRET
    assert source.issuer == op.issuer
    assert well_known_fetches(op) == 1


def test_update_refetch_and_a_new_secret(db, op):
    sso_source(*create_args(op))
    op.scenario["discovery"] = {"userinfo_endpoint": op.url("/userinfo/v2")}
    sso_source("update", "honest", "--refetch", "--client-secret", "rotated")
    source = Source.objects.get()
    assert source.userinfo_url == op.url("/userinfo/v2")
    assert source.client_secret == "rotated"
    assert well_known_fetches(op) == 2


def test_update_renames_the_slug(db, op):
    sso_source(*create_args(op))
    sso_source("update", "honest", "--slug", "renamed")
    assert list(Source.objects.values_list("slug", flat=True)) == ["renamed"]


def test_list_shows_every_source(db, op, attacker_op):
    make_source(op, "honest")
    make_source(attacker_op, "attacker", enabled=False)
    lines = sso_source("list").splitlines()
    assert lines == [
        f"attacker\toidc\tdisabled\t{attacker_op.issuer}\tAttacker",
        f"honest\toidc\tenabled\t{op.issuer}\tHonest",
    ]


def test_list_is_empty_without_sources(db):
    assert sso_source("list") == ""


def test_refresh_fetches_on_demand(db, op):
    sso_source(*create_args(op))
    stamp = Source.objects.get().last_discovery_at
    op.scenario["discovery"] = {"jwks_uri": op.url("/keys/2")}
    assert sso_source("refresh", "honest") == f"refreshed honest: issuer {op.issuer}\n"
    source = Source.objects.get()
    assert source.jwks_url == op.url("/keys/2")
    assert source.last_discovery_at > stamp
    assert well_known_fetches(op) == 2


def test_delete_removes_the_source(db, op):
    make_source(op, "honest")
    assert sso_source("delete", "honest") == "deleted honest\n"
    assert Source.objects.count() == 0


@pytest.mark.parametrize(
    "action", [["update", "nope", "--name", "X"], ["refresh", "nope"], ["delete", "nope"]]
)
def test_an_unknown_slug_fails(db, action):
    assert command_error(*action) == "no source with slug 'nope'"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "Enter a valid URL"),
        (
            "https://op.example/honest/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ),
        ("http://op.example/honest" + WELL_KNOWN, "must use https"),
    ],
)
def test_a_bad_well_known_url_fails(db, op, url, reason):
    args = create_args(op)
    args[args.index("--well-known") + 1] = url
    message = command_error(*args)
    assert message.startswith("well_known_url: ")
    assert reason in message
    assert Source.objects.count() == 0


def test_a_discovery_failure_fails(db, op, network):
    network.failures[op.url(WELL_KNOWN)] = requests.ReadTimeout()
    assert "did not answer in time" in command_error(*create_args(op))
    op.scenario["discovery"] = {"issuer": "https://op.example/other"}
    network.failures.clear()
    assert "Issuer mismatch" in command_error(*create_args(op))
    assert Source.objects.count() == 0


def test_a_discovery_failure_on_update_leaves_the_source_unchanged(db, op):
    sso_source(*create_args(op))
    before = snapshot(Source.objects.get())
    op.scenario["discovery"] = {"token_endpoint": "http://op.example/honest/token"}
    assert "must use https" in command_error("update", "honest", "--refetch", "--name", "Renamed")
    assert snapshot(Source.objects.get()) == before


def test_a_missing_client_id_fails(db, op):
    args = create_args(op)
    del args[args.index("--client-id") : args.index("--client-id") + 2]
    assert command_error(*args) == "client_id: This field is required."
    assert Source.objects.count() == 0


@pytest.mark.parametrize("param", ["prompt", "=login", ""])
def test_a_bad_param_fails(db, op, param):
    assert command_error(*create_args(op, "--param", param)) == f"--param takes KEY=VALUE, got {param!r}"
    assert Source.objects.count() == 0


def test_an_unreadable_jwks_file_fails(db, op, tmp_path):
    message = command_error(*create_args(op, "--jwks-file", str(tmp_path / "missing.json")))
    assert message.startswith("cannot read ")


def test_a_duplicate_slug_fails(db, op, attacker_op):
    make_source(attacker_op, "honest")
    assert command_error(*create_args(op)).startswith("slug: ")


def _manage(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_real_run_exits_zero_on_success_and_non_zero_with_one_line_on_error(tmp_path):
    database = tmp_path / "sso.sqlite3"
    migrate = _manage("migrate", "--noinput", database=database)
    assert migrate.returncode == 0, migrate.stderr
    # The command runs Django's system checks first; the test settings draw a W001 warning.
    listed = _manage("sso_source", "list", database=database)
    assert (listed.returncode, listed.stdout) == (0, "")
    assert "Error" not in listed.stderr
    failed = _manage("sso_source", "refresh", "nope", database=database)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.splitlines()[-1] == "CommandError: no source with slug 'nope'"
    assert failed.stderr.count("CommandError") == 1
