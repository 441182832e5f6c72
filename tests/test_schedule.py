"""The django-q2 schedule: declared once by a migration, run by django-q2's own scheduler and worker."""

from __future__ import annotations

import queue
from datetime import timedelta
from multiprocessing import Value

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Task
from django_q.monitor import save_task
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage
from django_q.worker import worker

from monitoring.models import Alert, Level
from monitoring.schedule import (
    SCHEDULE_NAME,
    SCHEDULES,
    TASK_FUNC,
    Declared,
    interval_minutes,
    sync_schedule,
    sync_schedules,
)
from monitoring.simulator import PROD_KEY


def test_the_cluster_is_configured_to_fail_safely():
    q = settings.Q_CLUSTER
    assert q["timeout"] < q["retry"]
    assert q["catch_up"] is False
    assert 0 < q["max_attempts"] <= 3 and q["ack_failures"] is True


@pytest.mark.django_db(transaction=True)
def test_re_running_the_migrations_leaves_exactly_one_schedule_row():
    call_command("migrate", "monitoring", "0001", verbosity=0)
    assert not Schedule.objects.filter(name=SCHEDULE_NAME).exists()

    call_command("migrate", "monitoring", verbosity=0)
    call_command("migrate", verbosity=0)
    sync_schedule(Schedule, settings.CHECK_INTERVAL_MINUTES)

    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (TASK_FUNC, "I", 360, -1)


@pytest.mark.django_db
def test_syncing_collapses_duplicates_and_follows_the_interval():
    for _ in range(2):
        Schedule.objects.create(name=SCHEDULE_NAME, func="old.func", schedule_type="I", minutes=5)
    sync_schedule(Schedule, 90)
    sync_schedule(Schedule, 90)
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert (schedule.func, schedule.minutes) == (TASK_FUNC, 90)


@pytest.mark.django_db(transaction=True)
def test_the_real_scheduler_runs_the_due_job_and_moves_the_schedule_six_hours_on(sim, settings, webhook_receiver):
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    sim.set_key(PROD_KEY, limit=100, usage=95, limit_remaining=None)
    sync_schedule(Schedule, settings.CHECK_INTERVAL_MINUTES)  # the flush between tests removed the migration's row
    Schedule.objects.exclude(name=SCHEDULE_NAME).delete()  # the spend watch has its own test
    due = timezone.now() - timedelta(seconds=5)
    Schedule.objects.filter(name=SCHEDULE_NAME).update(next_run=due)
    broker = get_broker()
    queued_before = broker.queue_size()

    scheduler(broker=broker)

    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert schedule.next_run == due + timedelta(minutes=360)
    assert broker.queue_size() == queued_before + 1

    # Hand the queued package to django-q2's own worker function, as a cluster's worker process would.
    ack_id, package = broker.dequeue()[0]
    task = SignedPackage.loads(package)
    assert (task["func"], task["group"]) == (TASK_FUNC, SCHEDULE_NAME)
    tasks_in, results = queue.Queue(), queue.Queue()
    tasks_in.put(task)
    tasks_in.put("STOP")
    worker(tasks_in, results, Value("f", -1), timeout=60)
    finished = results.get_nowait()
    save_task(finished, broker)
    broker.acknowledge(ack_id)

    saved = Task.objects.get(group=SCHEDULE_NAME)
    assert saved.success, saved.result
    assert saved.result.startswith("WARNING: ")
    assert Alert.objects.get().level == Level.WARNING
    assert webhook_receiver.received[0]["body"]["title"].startswith("[WARNING]")


@pytest.mark.django_db
def test_a_second_declared_schedule_is_synced_from_its_own_setting(settings, monkeypatch):
    watch = Declared("spend-watch", "monitoring.tasks.monitor_job", "WATCH_INTERVAL_MINUTES")
    monkeypatch.setattr("monitoring.schedule.SCHEDULES", [*SCHEDULES, watch])  # one more entry, nothing else
    settings.WATCH_INTERVAL_MINUTES = 10
    sync_schedules()
    assert Schedule.objects.get(name="spend-watch").minutes == 10
    assert interval_minutes("spend-watch") == 10
    assert Schedule.objects.get(name=SCHEDULE_NAME).minutes == settings.CHECK_INTERVAL_MINUTES

    settings.WATCH_INTERVAL_MINUTES = 0  # off: the row goes
    sync_schedules()
    assert not Schedule.objects.filter(name="spend-watch").exists()
