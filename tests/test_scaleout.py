"""Scale-out smoke: gunicorn plus two qcluster workers on PostgreSQL + Redis run a due schedule once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from monitoring.schedule import SCHEDULE_NAME, TASK_FUNC, sync_schedule
from monitoring.simulator import PROD_KEY

ROOT = Path(__file__).resolve().parent.parent
ON_SCALEOUT_ENGINES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and bool(settings.REDIS_URL)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not ON_SCALEOUT_ENGINES,
        reason="scale-out smoke needs DATABASE_URL=postgres and REDIS_URL; `make test` runs it in its second pass",
    ),
]
API_TOKEN = "scaleout-api-token"
RUN_WAIT_SECONDS = 90  # the scheduler looks at schedules every 30 s
EXTRA_WAIT_SECONDS = 40  # one more scheduler pass on each cluster: a duplicate would show by then


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_of_test_db() -> str:
    """A URL for the test database pytest-django created, for the subprocesses."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, seconds: float, step: float = 1.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture
def environment(sim, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_db(),
        "REDIS_URL": settings.REDIS_URL,
        "Q_WORKERS": "2",
        "OPENROUTER_BASE_URL": sim.url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_API_KEYS": "",
        "OPENROUTER_MANAGEMENT_KEY": "",
        "OPENROUTER_TIMEOUT": "5",
        "NOTIFY_URLS": "",
        "HEARTBEAT_URL": "",
        "API_TOKEN": API_TOKEN,
        "CREDITMON_LOG_DIR": str(tmp_path / "logs"),
        "PYTHONUNBUFFERED": "1",
    }
    return env


@pytest.fixture
def processes(tmp_path):
    """Started subprocesses, each stopped by its own id (SIGTERM, then SIGKILL) at the end."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        started.append((proc, log))
        return proc

    start.logs = lambda: "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in started)
    yield start
    for proc, _ in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _ in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def clear_redis_queue():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"django_q:{settings.Q_CLUSTER['name']}:*"):
        client.delete(key)


def monitor_runs() -> tuple[int, int]:
    """(credit-log rows of the watched key, finished django-q2 tasks of the job)."""
    from django_q.models import Task

    from monitoring.models import CreditLog

    return CreditLog.objects.count(), Task.objects.filter(func=TASK_FUNC).count()


def test_gunicorn_and_two_clusters_run_a_due_schedule_exactly_once(transactional_db, environment, processes):
    from django_q.models import Schedule

    clear_redis_queue()
    schedule = sync_schedule(Schedule, 360)
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - timedelta(seconds=1))
    assert monitor_runs() == (0, 0)

    port = free_port()
    web = processes(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "creditmon.asgi:application",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
        ],  # the Procfile's web command
        environment,
    )
    clusters = [processes(f"qcluster-{n}", [sys.executable, "manage.py", "qcluster"], environment) for n in (1, 2)]

    def healthy():
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or a loaded machine: ask again
            return False

    assert wait_for(healthy, 30), f"gunicorn did not answer /healthz\n{processes.logs()}"
    assert wait_for(lambda: monitor_runs()[1] >= 1, RUN_WAIT_SECONDS), f"the schedule never ran\n{processes.logs()}"
    time.sleep(EXTRA_WAIT_SECONDS)
    assert all(proc.poll() is None for proc in [web, *clusters]), f"a process died\n{processes.logs()}"
    assert monitor_runs() == (1, 1)  # one check logged, one task: no duplicate run
    assert Schedule.objects.get(name=SCHEDULE_NAME).next_run > timezone.now() + timedelta(minutes=300)

    health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.json() == {"status": "ok"}
    refused = requests.get(f"http://127.0.0.1:{port}/api/status/", timeout=5)
    assert refused.status_code == 401
    status = requests.get(
        f"http://127.0.0.1:{port}/api/status/", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=5
    )
    assert status.status_code == 200
    (key,) = status.json()["keys"]
    assert key["remaining"] == 45.23
    assert PROD_KEY not in status.text
