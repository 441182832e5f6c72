"""The spend watch: a runaway is alerted within minutes, a quiet account adds no rows, the real worker runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

from monitoring import schedule, watch
from monitoring.models import Alert, CreditLog, Level, WatchState
from monitoring.schedule import SCHEDULE_NAME
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, MODELS, PROD_KEY, Clock, Simulator
from monitoring.tasks import monitor_job, watch_job

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAMES = [m[0] for m in MODELS]


@pytest.fixture
def world(settings, webhook_receiver):
    """A simulated OpenRouter on its own clock: Production Key at $3/day, $45 under its cap, a management key."""
    clock = Clock(datetime(2026, 11, 2, tzinfo=UTC))
    sim = Simulator("management", now=clock).start()
    sim.remove_key(DEV_KEY)
    sim.set_key(PROD_KEY, limit=100.0, usage=40.0, spend_per_day=3.0, activity_per_day=3.0)
    sim.set_account(500.0, 100.0)  # the key's cap binds, not the account
    settings.OPENROUTER_BASE_URL = sim.url
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.OPENROUTER_MAX_RETRIES = 0
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    settings.HEARTBEAT_URL = ""
    settings.WATCH_INTERVAL_MINUTES = 10
    yield sim, clock
    sim.stop()


def history(clock: Clock, days: float = 3) -> datetime:
    """Scheduled checks every 6 hours for `days`, on the simulated clock; returns the time after the last."""
    start = clock.at
    for n in range(int(days * 4) + 1):
        clock.at = start + timedelta(hours=6 * n)
        monitor_job(now=clock.at)
    return clock.at + timedelta(minutes=5)


def watch_every(clock: Clock, start: datetime, minutes: float, interval: int = 10) -> list[datetime]:
    """watch_job every `interval` minutes from `start` for `minutes`; the times it ran."""
    times = []
    for n in range(int(minutes // interval) + 1):
        clock.at = start + timedelta(minutes=interval * n)
        watch_job(now=clock.at)
        times.append(clock.at)
    return times


@pytest.mark.django_db
def test_a_quiet_account_adds_no_rows_and_no_alert(world):
    sim, clock = world
    start = history(clock)
    logged = CreditLog.objects.count()
    watch_every(clock, start, minutes=5 * 60)
    assert CreditLog.objects.count() == logged  # thirty watches, not one row
    assert WatchState.objects.count() == 1
    assert len(WatchState.objects.get().readings) <= 8  # the last hour, rewritten in place
    assert not Alert.objects.filter(condition=Alert.RUNAWAY).exists()


@pytest.mark.django_db
def test_a_runaway_is_alerted_within_the_hour_naming_key_and_model_then_resolves(world, webhook_receiver):
    sim, clock = world
    start = history(clock)
    watch_every(clock, start, minutes=30)
    switched = clock.at
    sim.set_key(PROD_KEY, spend_per_day=60.0)  # a loop: 20x the usual, $45 left means 18 hours
    moment = switched
    while not webhook_receiver.received and moment - switched < timedelta(hours=2):
        moment += timedelta(minutes=10)
        clock.at = moment
        watch_job(now=moment)
    alert = Alert.objects.get(condition=Alert.RUNAWAY)
    assert alert.opened_at - switched <= timedelta(hours=1)
    assert alert.level == Level.CRITICAL  # at this pace the money is gone within the critical horizon
    body = webhook_receiver.received[0]["body"]
    assert body["title"] == "[CRITICAL] Production Key: Runaway spend"
    message = body["message"]
    assert "Production Key +$" in message and "% of the rise" in message
    assert any(re.search(re.escape(model) + r" \+?\$\d+\.\d\d", message) for model in MODEL_NAMES), message
    assert "may run out as early as" in message
    assert CreditLog.objects.filter(timestamp=moment).exists()  # the reading behind the alert

    # The loop is stopped: the next watches see the usual pace and the alert resolves (without a new message).
    sim.set_key(PROD_KEY, spend_per_day=3.0)
    watch_every(clock, clock.at + timedelta(minutes=10), minutes=70)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


@pytest.mark.django_db
def test_the_watch_schedule_is_declared_once_and_removed_at_zero(settings):
    settings.WATCH_INTERVAL_MINUTES = 10
    schedule.sync_schedules()
    settings.WATCH_INTERVAL_MINUTES = 5
    schedule.sync_schedules()
    row = Schedule.objects.get(name=schedule.WATCH_SCHEDULE_NAME)
    assert (row.func, row.minutes, row.schedule_type) == ("monitoring.tasks.watch_job", 5, Schedule.MINUTES)
    settings.WATCH_INTERVAL_MINUTES = 0
    schedule.sync_schedules()
    assert not Schedule.objects.filter(name=schedule.WATCH_SCHEDULE_NAME).exists()


@pytest.mark.django_db
def test_a_watch_set_to_zero_does_nothing(world, settings):
    settings.WATCH_INTERVAL_MINUTES = 0
    assert watch_job().startswith("watch off")
    assert not WatchState.objects.exists()


# --- the real worker --------------------------------------------------------------------------


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_worker_alerts_a_runaway_within_two_watch_intervals(world, webhook_receiver, tmp_path):
    sim, clock = world
    interval = 60  # seconds: WATCH_INTERVAL_MINUTES=1
    now = timezone.now()
    clock.at = now - timedelta(days=3)
    sim.set_key(PROD_KEY, usage=40.0)  # $60 left under the cap from here
    sim.set_account(500.0, 100.0)
    history(clock, days=3 - 0.3)  # checks up to a few hours ago, on the simulated clock
    clock.at = now - timedelta(minutes=1)
    watch_job(now=clock.at)  # the last quiet watch before the loop starts
    clock.at = None  # from here the simulator follows the wall clock, as the worker does
    Schedule.objects.filter(name=SCHEDULE_NAME).update(next_run=now + timedelta(hours=6))
    schedule.sync_schedule(Schedule, 1, schedule.WATCH_SCHEDULE_NAME, "monitoring.tasks.watch_job")
    Schedule.objects.filter(name=schedule.WATCH_SCHEDULE_NAME).update(next_run=timezone.now())
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OPENROUTER_BASE_URL": sim.url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_API_KEYS": "",
        "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
        "NOTIFY_URLS": f"json://{webhook_receiver.url}/hook",
        "HEARTBEAT_URL": "",
        "CREDITMON_DEMO": "False",
        "CREDITMON_LOG_DIR": str(tmp_path),
        "Q_WORKERS": "1",
        "WATCH_INTERVAL_MINUTES": "1",
        "WATCH_MIN_USD": "0.1",  # a minute of watching sees cents, not dollars
    }
    output = tmp_path / "qcluster.out"
    with output.open("wb") as out:
        sim.set_key(PROD_KEY, spend_per_day=2880.0)  # a loop burning $2 a minute
        switched = time.monotonic()
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            # Two watch intervals, plus the 30 s django-q2's scheduler may take to notice a due schedule.
            deadline = switched + 2 * interval + 30
            while time.monotonic() < deadline and cluster.poll() is None and not webhook_receiver.received:
                time.sleep(0.5)
            delivered_after = time.monotonic() - switched
        finally:
            cluster.send_signal(signal.SIGTERM)
            try:
                cluster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cluster.kill()
                cluster.wait()
    log = output.read_text(errors="replace")
    assert webhook_receiver.received, f"no runaway alert within two watch intervals; cluster said:\n{log[-3000:]}"
    assert delivered_after <= 2 * interval + 30
    body = webhook_receiver.received[0]["body"]
    assert body["title"] == "[CRITICAL] Production Key: Runaway spend"
    assert "Production Key +$" in body["message"]
    assert any(model in body["message"] for model in MODEL_NAMES)
    task = Task.objects.filter(func="monitoring.tasks.watch_job", success=True).first()
    assert task is not None and task.result.startswith("runaway: Production Key")
    assert PROD_KEY not in log


@pytest.mark.parametrize(
    ("spent", "baseline", "remaining", "runaway"),
    [
        (2.5, 3.0, 45.0, True),  # $60/day against $3: 20x, 18 hours left
        (0.5, 0.1, 45.0, False),  # 120x, but 50 cents: noise, not a runaway
        (2.5, 3.0, 5000.0, False),  # 20x, but at that pace the money lasts 83 days
        (2.5, 20.0, 200.0, True),  # 3x: 3.3 days left, while the scheduled forecast says 10
        (2.5, 20.0, 100.0, False),  # 3x, and the scheduled forecast already says 5 days: its alert tells it
        (1.5, 20.0, 200.0, False),  # 1.8x: an ordinary busy hour
        (2.5, None, 45.0, True),  # no burn rate yet: the pace alone
        (2.5, 3.0, None, True),  # 20x with no balance known (no cap, no management key): the ratio alone
        (2.5, None, None, False),  # neither a rate nor a balance: nothing to compare with
    ],
)
def test_what_counts_as_a_runaway(spent, baseline, remaining, runaway):
    pace = watch.Pace(key=None, snapshot=None, spent=spent, minutes=60, baseline=baseline, remaining=remaining)
    assert watch.is_runaway(pace) is runaway
