"""`make run`'s command: web server, worker and simulator come up in demo mode and stop cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "make-demo-with-a-key"])
def test_runapp_starts_the_demo_and_stops_cleanly(tmp_path, with_key):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "DATABASE_URL", "REDIS_URL"))}
    env["CREDITMON_LOG_DIR"] = str(tmp_path)
    demo = []
    if with_key:  # `make demo`: the demo even when a real key is configured, which it leaves alone
        env["OPENROUTER_API_KEY"] = "sk-or-v1-a-real-looking-key-never-called"
        demo = ["--demo"]
    app = subprocess.Popen(
        [sys.executable, "manage.py", "runapp", *demo, "--port", str(port), "--demo-db", str(tmp_path / "demo.db")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 240  # the demo's month is made by ~180 real runs
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
        for _ in range(50):
            try:
                login = requests.get(f"{base}/accounts/login/", timeout=2)
                break
            except requests.ConnectionError:
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
        assert "Spend spike" in alerts and "Acknowledge" in alerts and "/demo-inbox" in alerts
        assert "none configured" not in alerts  # the deliveries' channel is the one the page lists
    finally:
        app.send_signal(signal.SIGTERM)
        code = app.wait(timeout=30)
    assert code == 0
    with socket.socket() as s:  # the web server is gone with its parent
        assert s.connect_ex(("127.0.0.1", port)) != 0
