"""What a server needs from the repository: a systemd unit that systemd accepts, and a secret key kept in an
owner-only file when none is given."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "creditmon.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    # Installed under /opt/creditmon as the README says; here it points at this checkout so its paths exist.
    unit = tmp_path / "creditmon.service"
    unit.write_text(UNIT.read_text().replace("/opt/creditmon", str(ROOT)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "creditmon.service" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_the_unit_runs_the_supervisor_with_debug_off_and_a_kept_secret_key():
    text = UNIT.read_text()
    assert "ExecStart=/opt/creditmon/.venv/bin/python -m creditmon.supervisor" in text
    assert "Environment=DJANGO_DEBUG=false" in text and "DJANGO_SECRET_KEY_FILE=/var/lib/creditmon/" in text
    assert "KillMode=mixed" in text


def check(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_secret_key_is_generated_once_into_an_owner_only_file_and_kept(tmp_path):
    key_file = tmp_path / "state" / "secret_key"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="", DJANGO_SECRET_KEY_FILE=str(key_file))
    env.update(CREDITMON_LOG_DIR=str(tmp_path), OPENROUTER_API_KEY="sk-or-v1-placeholder-for-the-check")

    first = check(env)
    assert first.returncode == 0, first.stderr
    key = key_file.read_text()
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key.strip()) >= 50
    assert check(env).returncode == 0 and key_file.read_text() == key  # kept, not regenerated
    assert list(key_file.parent.iterdir()) == [key_file]  # no draft left beside it

    key_file.chmod(0o644)
    shared = check(env)
    assert shared.returncode == 3 and "readable by others: chmod 600" in shared.stderr
    assert key.strip() not in shared.stderr + shared.stdout


@pytest.mark.slow
def test_the_units_command_runs_the_procfile_and_stops_on_sigterm(tmp_path):
    """`python -m creditmon.supervisor`, as the unit starts it: release step, then gunicorn and the worker."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OPENROUTER_", "DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "secret_key"),
        OPENROUTER_API_KEY="sk-or-v1-placeholder-never-called",
        OPENROUTER_BASE_URL="http://127.0.0.1:9/api/v1",
        CHECK_INTERVAL_MINUTES="360",
        CREDITMON_LOG_DIR=str(tmp_path),
        PORT=str(port),
        STATIC_ROOT=str(tmp_path / "static"),  # its release step's collectstatic: never the one other runs share
    )
    app = subprocess.Popen(
        [sys.executable, "-m", "creditmon.supervisor"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and app.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.3)
        assert app.poll() is None and health.status_code == 200, app.stdout.read()[-3000:] if app.poll() else ""
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            code = app.wait(timeout=5)
        finally:
            if app.poll() is None:
                os.killpg(app.pid, signal.SIGKILL)
        output = app.stdout.read()
    assert code == 0, output[-2000:]
    assert "Listening at: http://127.0.0.1:" in output and "Q Cluster" in output
