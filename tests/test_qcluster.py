"""The whole loop for real once: `manage.py qcluster` (and the Procfile's `runworker`) runs the due schedule and a
notification arrives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule, Task

from monitoring.models import CreditLog
from monitoring.schedule import SCHEDULE_NAME, TASK_FUNC, sync_schedule
from monitoring.simulator import PROD_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WAIT_SECONDS = 90  # the cluster's scheduler looks at schedules every 30 s


def database_url() -> str:
    """The test database, for a process outside this one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["qcluster", "runworker"])
def test_the_worker_runs_the_due_schedule_notifies_and_stops_cleanly(command, sim, webhook_receiver, tmp_path):
    sim.set_key(PROD_KEY, limit=100, usage=96, limit_remaining=None)
    sync_schedule(Schedule, 360)
    Schedule.objects.filter(name=SCHEDULE_NAME).update(next_run=timezone.now() - timedelta(seconds=1))
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OPENROUTER_BASE_URL": sim.url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_API_KEYS": "",
        "OPENROUTER_MANAGEMENT_KEY": "",
        "OPENROUTER_CREDIT_THRESHOLD": "10",
        "NOTIFY_URLS": f"json://{webhook_receiver.url}/hook",
        "HEARTBEAT_URL": "",
        "CREDITMON_DEMO": "False",
        "CREDITMON_LOG_DIR": str(tmp_path),
        "Q_WORKERS": "1",
    }  # REDIS_URL, when the suite runs against Redis, passes through unchanged
    output = tmp_path / "qcluster.out"
    with output.open("wb") as out:
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", command], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            done = False
            forked = set()
            while time.monotonic() < deadline and cluster.poll() is None and not done:
                time.sleep(0.5)
                forked.update(children(cluster.pid))
                done = bool(webhook_receiver.received) and Task.objects.filter(group=SCHEDULE_NAME).exists()
        finally:
            cluster.send_signal(signal.SIGTERM)
            try:
                returncode = cluster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cluster.kill()
                returncode = cluster.wait()
    log = output.read_text(errors="replace")

    assert webhook_receiver.received, f"no notification within {WAIT_SECONDS} s; cluster said:\n{log[-3000:]}"
    assert webhook_receiver.received[0]["body"]["title"].startswith("[WARNING]")
    assert "Balance: $4.00 remaining" in webhook_receiver.received[0]["body"]["message"]
    task = Task.objects.get(group=SCHEDULE_NAME)
    assert (task.func, task.success) == (TASK_FUNC, True)
    assert CreditLog.objects.get().remaining == 4.0
    assert Schedule.objects.get(name=SCHEDULE_NAME).next_run > timezone.now() + timedelta(hours=5)
    assert returncode == 0, log[-3000:]
    assert PROD_KEY not in log
    if command == "runworker":  # the monitor and pusher are threads: the one worker is the only process it forks
        assert len(forked) == 1, forked
