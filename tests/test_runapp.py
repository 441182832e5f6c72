"""`make run`'s command: gunicorn, the worker and the simulator come up in demo mode, served like production
(DEBUG off, a kept secret key, no query strings in the access log), and everything stops within 5 s of a signal."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]


def tree(root: int) -> dict[int, str]:
    """Every live descendant of a process (and itself): pid -> command line."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        todo += parents.get(pid, [])
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# The processes and how they stop are under test here, not the month (tests/test_demo.py reads that): a few days of
# the real job start the demo in seconds instead of a month's ~180 runs.
FEW_DAYS = ["--demo-days", "4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "with_key, stop",
    [(False, "sigterm-to-main"), (True, "ctrl-c-to-group"), (False, "sigterm-to-every-process")],
    ids=["no-key-sigterm", "make-demo-with-a-key-ctrl-c", "systemd-style-sigterm-to-all"],
)
def test_runapp_serves_the_demo_like_production_and_stops_within_5_s(tmp_path, with_key, stop):
    port = free_port()
    strip = ("OPENROUTER_", "DATABASE_URL", "REDIS_URL", "DJANGO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(strip)}
    env["CREDITMON_LOG_DIR"] = str(tmp_path)
    env["DJANGO_SECRET_KEY_FILE"] = str(tmp_path / "state" / "secret_key")
    env["STATIC_ROOT"] = str(tmp_path / "static")  # its release step's collectstatic, apart from parallel runs
    demo = []
    if with_key:  # `make demo`: the demo even when a real key is configured, which it leaves alone
        env["OPENROUTER_API_KEY"] = "sk-or-v1-a-real-looking-key-never-called"
        demo = ["--demo"]
    app = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runapp",
            *demo,
            "--port",
            str(port),
            "--demo-db",
            str(tmp_path / "demo.db"),
            *FEW_DAYS,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
    )
    output = []
    processes: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 240  # a few days of the demo, made by real runs
        while time.monotonic() < deadline:
            line = app.stdout.readline()
            output.append(line)
            if "Log in as" in line or app.poll() is not None:
                break
        text = "".join(output)
        assert "DEMO MODE" in text and "SIMULATED OpenRouter" in text, text
        assert "Log in as `demo` with password `creditmon-demo`" in text
        assert ("no OPENROUTER_API_KEY is set" in text) is not with_key, text  # never a false reason
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the banner comes as gunicorn binds; its worker may still be loading Django
            try:
                login = requests.get(f"{base}/accounts/login/", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        assert login.status_code == 200 and "Demo login: username <code>demo</code>" in login.text
        page = requests.get(f"{base}/health/", allow_redirects=False, timeout=5)
        assert page.status_code == 302 and "/accounts/login/" in page.headers["Location"]
        session = requests.Session()
        session.get(f"{base}/accounts/login/", timeout=5)
        session.post(
            f"{base}/accounts/login/",
            data={
                "username": "demo",
                "password": "creditmon-demo",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        health = session.get(f"{base}/health/", timeout=10)
        assert health.status_code == 200 and "Production Key" in health.text
        assert "sk-or-v1-sim-prod-key" not in health.text
        alerts = session.get(f"{base}/alerts/", timeout=10).text  # the demo has an open alert and its deliveries
        assert "Spend spike" in alerts and "Acknowledge" in alerts and "/_sim/inbox" in alerts
        assert "none configured" not in alerts  # the deliveries' channel is the one the page lists

        missing = session.get(f"{base}/no-such-page/", timeout=10)  # DEBUG off: no technical 404 page
        assert missing.status_code == 404 and "URLconf" not in missing.text
        secret = "tok-" + "9f3b" * 8  # a token sent by mistake in a query string
        assert requests.get(f"{base}/healthz?token={secret}", timeout=5).status_code == 200
        processes = tree(app.pid)
        commands = " | ".join(processes.values())
        assert "gunicorn creditmon.asgi:application -k uvicorn_worker.UvicornWorker" in commands, commands
        assert "manage.py runworker" in commands and "creditmon.supervisor" in commands
        assert "runserver" not in commands
        key_file = tmp_path / "state" / "secret_key"
        assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text().strip()) >= 50
    finally:
        started = time.monotonic()
        if stop == "sigterm-to-main":
            app.send_signal(signal.SIGTERM)
        elif stop == "ctrl-c-to-group":
            os.killpg(app.pid, signal.SIGINT)
        else:  # what systemd does by default (KillMode=control-group): every process at once
            for pid in tree(app.pid):
                os.kill(pid, signal.SIGTERM)
        try:
            code = app.wait(timeout=5)  # the promise: everything gone within 5 s
        finally:
            if app.poll() is None:
                os.killpg(app.pid, signal.SIGKILL)
        took = time.monotonic() - started
        rest = app.stdout.read()
    print(f"stopped in {took:.2f} s ({stop})")
    assert code == 0, rest[-2000:]
    assert not [cmd for pid, cmd in processes.items() if alive(pid)], "a child was left behind"
    with socket.socket() as s:  # the web server is gone with its parent
        assert s.connect_ex(("127.0.0.1", port)) != 0
    log = "".join(output) + rest
    assert "GET /healthz" in log and secret not in log and "?token" not in log


@pytest.mark.slow
def test_a_run_in_progress_when_make_run_stops_records_why_and_releases_its_lease(tmp_path):
    port, demo_db = free_port(), tmp_path / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        CREDITMON_LOG_DIR=str(tmp_path),
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "secret_key"),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    app = subprocess.Popen(
        [sys.executable, "manage.py", "runapp", "--port", str(port), "--demo-db", str(demo_db), *FEW_DAYS],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        banner = ""
        while "Log in as" not in banner and app.poll() is None:
            banner += app.stdout.readline()
        simulator = re.search(r"answers at (http://127\.0\.0\.1:\d+)/api/v1", banner).group(1)
        # OpenRouter hangs from now on: the run a check starts (Check now, or the first scheduled one) is mid-run
        # when make run is stopped.
        requests.post(f"{simulator}/_sim/failure", json={"name": "slow", "delay": 120}, timeout=5)
        session = requests.Session()
        for _ in range(100):
            try:
                session.get(f"{base}/accounts/login/", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        session.post(
            f"{base}/accounts/login/",
            data={
                "username": "demo",
                "password": "creditmon-demo",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        session.post(
            f"{base}/health/check-now/",
            data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": f"{base}/health/"},
            timeout=10,
        )
        wait(lambda: lease_holder(demo_db), 90, "the check to take the run lease")
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=5)
        finally:
            if app.poll() is None:
                os.killpg(app.pid, signal.SIGKILL)
        rest = app.stdout.read()
    assert app.returncode == 0, rest[-2000:]
    assert lease_holder(demo_db) == "", "the stopped run released its lease"
    with sqlite3.connect(demo_db) as db:
        (error,) = db.execute(
            "SELECT error FROM openrouter_credit_log WHERE label = 'monitoring run' ORDER BY id DESC"
        ).fetchone()
    assert "stopped before it finished" in error and "SIGTERM" in error, error


def lease_holder(demo_db: Path) -> str | None:
    with sqlite3.connect(demo_db, timeout=20) as db:
        row = db.execute("SELECT holder FROM monitoring_lease WHERE name = 'monitor'").fetchone()
    return row[0] if row else None


def wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds:g} s: {what}")
