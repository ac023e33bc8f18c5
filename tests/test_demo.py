"""The README's demo command: the example site with the local provider, signed into over HTTP."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_check_signs_in_through_the_local_provider(tmp_path):
    # scripts/demo = scripts/bootstrap + this module; the bootstrap is what the suite runs in.
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.demo",
            "--check",
            "--port",
            str(_free_port()),
            "--op-port",
            str(_free_port()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "demo check: signed in as alice (alice@example.com) through local" in result.stdout
