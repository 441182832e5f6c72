"""Runs that never die silently: kill -9 of a real qcluster mid-run, Check now during an OpenRouter hang,
exit codes of `monitorcredits`, the heartbeat's two signals, and schedules that follow their settings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Task
from django_q.tasks import async_task

from monitoring import alerts, monitor, schedule, status, tasks
from monitoring.models import ApiKey, CreditLog, Lease, Level
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY
from tests.people import make_operator
from tests.test_qcluster import PROJECT_ROOT, database_url

POLL = 0.25


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL)
    raise AssertionError(f"not within {seconds:g} s: {what}")


def cluster_env(sim, tmp_path, **extra) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OPENROUTER_BASE_URL": sim.url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_API_KEYS": "",
        "OPENROUTER_MANAGEMENT_KEY": "",
        "NOTIFY_URLS": "",
        "HEARTBEAT_URL": "",
        "CREDITMON_DEMO": "False",
        "CREDITMON_LOG_DIR": str(tmp_path),
        "Q_WORKERS": "1",
    }  # REDIS_URL, when the suite runs against Redis, passes through unchanged
    env.update({name: str(value) for name, value in extra.items()})
    return env


@contextmanager
def qcluster(env: dict, log_path):
    """A real `manage.py qcluster` in its own process group; stopped with SIGTERM unless the test killed it."""
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the cluster's own graceful stop, as a service manager does
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def kill_9(process) -> None:
    """SIGKILL to every process of the cluster at once: sentinel, scheduler, workers, monitor, pusher."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: not _group_alive(process.pid), 10, "the killed process group to be gone")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def hanging(sim):
    """OpenRouter answers nothing for a minute (the simulator's "slow" mode)."""
    sim.delay = 60.0
    sim.set_failure("slow")
    yield sim
    sim.set_failure(None)
    sim.delay = 5.0


# --- kill -9 mid-run -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_mid_flight_is_run_again_soon_after_the_worker_restarts(hanging, tmp_path):
    sim = hanging
    sim.set_key(PROD_KEY, limit=100, usage=50, limit_remaining=None)
    broker = get_broker()
    broker.purge_queue()  # nothing left over from other tests (Redis keeps its lists between tests)
    planned = timezone.now() + timedelta(hours=6)
    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(next_run=planned)
    env = cluster_env(sim, tmp_path, RUN_RETRY_SECONDS=6, OPENROUTER_TIMEOUT=120, OPENROUTER_MAX_RETRIES=0)
    log = tmp_path / "qcluster.out"
    sim.requests.clear()

    with qcluster(env, log) as first:
        async_task(schedule.TASK_FUNC, group=schedule.SCHEDULE_NAME)  # what the scheduler queues
        wait_for(lambda: schedule.held_lease() and sim.requests, 60, "the run to start and call OpenRouter")
        kill_9(first)
    killed_at = timezone.now()

    assert not CreditLog.objects.exists()  # killed before it could record anything
    assert Lease.objects.get(name=schedule.LEASE_NAME).holder  # never released: it lapses by itself in seconds
    retry_at = Schedule.objects.get(name=schedule.SCHEDULE_NAME).next_run
    assert retry_at < killed_at + timedelta(seconds=7), "the dead run left its schedule due again soon"

    sim.set_failure(None)  # OpenRouter is back too
    restarted = time.monotonic()
    with qcluster(env, log):
        wait_for(lambda: CreditLog.objects.filter(ok=True).exists(), 300, "a successful check after the restart")
        took = time.monotonic() - restarted
        wait_for(lambda: Task.objects.filter(group=schedule.SCHEDULE_NAME).exists(), 30, "the re-run's Task row")
    output = log.read_text(errors="replace")

    assert took < 300, f"re-run {took:.0f} s after the restart"
    print(f"re-run recorded {took:.1f} s after the restart")
    assert CreditLog.objects.get(ok=True).remaining == pytest.approx(50.0)
    dead = CreditLog.objects.get(ok=False)  # the killed attempt is not lost: the re-run recorded it
    assert dead.label == monitor.RUN_LABEL and dead.key is None
    assert "never finished" in dead.error and "killed" in dead.error
    rerun = Task.objects.get(group=schedule.SCHEDULE_NAME)
    assert rerun.success, rerun.result
    assert not [t for t in Task.objects.all() if t.success and "in progress" in str(t.result)]
    assert Schedule.objects.get(name=schedule.SCHEDULE_NAME).next_run > timezone.now() + timedelta(hours=5)
    assert schedule.held_lease() is None
    assert PROD_KEY not in output


# --- one deadline per run; a run stopped by the task timeout is a failed row, run again soon ---------------


@pytest.mark.django_db(transaction=True)
def test_eight_hanging_keys_finish_within_one_run_deadline_with_a_failed_row_each(hanging, tmp_path):
    sim = hanging
    others = [f"sk-or-v1-hanging-{n}-" + "0" * 40 for n in range(6)]
    configured = [PROD_KEY, DEV_KEY, *others]  # eight keys, none of which OpenRouter answers
    get_broker().purge_queue()
    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(next_run=timezone.now() + timedelta(hours=6))
    env = cluster_env(
        sim,
        tmp_path,
        OPENROUTER_API_KEYS=" ".join(f"key{n}={token}" for n, token in enumerate(configured[1:])),
        OPENROUTER_MANAGEMENT_KEY=MANAGEMENT_KEY,
        RUN_DEADLINE_SECONDS=8,  # the task timeout follows: 18 s
        OPENROUTER_TIMEOUT=60,  # each call alone would wait a minute: the run's deadline is what ends them
        OPENROUTER_MAX_RETRIES=0,
    )
    with qcluster(env, tmp_path / "qcluster.out"):
        async_task(schedule.TASK_FUNC, group="eight-hanging")
        task = wait_for(lambda: Task.objects.filter(group="eight-hanging").first(), 120, "the run's Task row")
    took = (task.stopped - task.started).total_seconds()
    print(f"the run took {took:.1f} s for eight hanging keys (deadline 8 s, task timeout 18 s)")

    assert task.success, task.result  # it finished by itself: not stopped by the task timeout
    failed = CreditLog.objects.filter(ok=False)
    per_key = failed.exclude(key=None)
    assert per_key.count() == 8 and not CreditLog.objects.filter(ok=True).exists()
    assert len({row.key_id for row in per_key}) == 8
    for row in per_key:
        assert "deadline" in row.error, row.error
    listing = failed.get(label=monitor.LISTING_LABEL)  # the management key's listing is a row too
    assert "deadline" in listing.error
    assert not failed.filter(label=monitor.RUN_LABEL).exists()
    assert schedule.held_lease() is None


@pytest.mark.django_db(transaction=True)
def test_a_run_stopped_by_the_task_timeout_is_a_failed_row_and_runs_again_within_minutes(
    hanging, tmp_path, webhook_receiver
):
    sim = hanging
    sim.set_key(PROD_KEY, limit=100, usage=50, limit_remaining=None)
    get_broker().purge_queue()
    planned = timezone.now() + timedelta(hours=6)
    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(next_run=planned)
    env = cluster_env(
        sim,
        tmp_path,
        RUN_RETRY_SECONDS=6,
        OPENROUTER_TIMEOUT=120,
        OPENROUTER_MAX_RETRIES=0,
        HEARTBEAT_URL=f"http://{webhook_receiver.url}/ping/run",
    )
    with qcluster(env, tmp_path / "qcluster.out"):
        # A task timeout shorter than the run needs, as when something outside the run's deadline hangs.
        async_task(schedule.TASK_FUNC, group=schedule.SCHEDULE_NAME, timeout=4)
        stopped = wait_for(
            lambda: CreditLog.objects.filter(label=monitor.RUN_LABEL).first(), 90, "the stopped run's row"
        )
        stopped_at = timezone.now()
        assert "task timeout" in stopped.error and "(4 seconds)" in stopped.error, stopped.error
        assert not stopped.ok
        retry_at = Schedule.objects.get(name=schedule.SCHEDULE_NAME).next_run
        assert retry_at < stopped_at + timedelta(minutes=3), "the stopped run stays due soon, not 6 hours away"
        sim.set_failure(None)
        wait_for(lambda: CreditLog.objects.filter(ok=True).exists(), 180, "the re-run's successful check")
        rerun_after = (timezone.now() - stopped_at).total_seconds()
    print(f"re-run recorded {rerun_after:.1f} s after the timeout")
    assert CreditLog.objects.get(ok=True).remaining == pytest.approx(50.0)
    paths = [r["path"] for r in webhook_receiver.received]
    assert paths[0] == "/ping/run/fail" and "/ping/run" in paths[1:]
    assert Schedule.objects.get(name=schedule.SCHEDULE_NAME).next_run > timezone.now() + timedelta(hours=5)
    assert schedule.held_lease() is None


# --- Check now ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_check_now_while_openrouter_hangs_answers_at_once_and_records_the_attempt(
    hanging, client, django_user_model, tmp_path
):
    get_broker().purge_queue()
    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(next_run=timezone.now() + timedelta(hours=6))
    client.force_login(make_operator(django_user_model.objects.create_user("ops", password="a-long-password")))
    env = cluster_env(hanging, tmp_path, OPENROUTER_TIMEOUT=2, OPENROUTER_MAX_RETRIES=0)
    with qcluster(env, tmp_path / "qcluster.out"):
        started = time.monotonic()
        response = client.post("/health/check-now/", follow=True)
        answered = time.monotonic() - started
        assert response.status_code == 200
        assert answered < 5, f"Check now answered in {answered:.1f} s"
        print(f"Check now answered in {answered:.2f} s")
        assert "Check queued at" in response.text

        failed = wait_for(lambda: CreditLog.objects.filter(ok=False).first(), 60, "the attempt to be recorded")
        assert "did not answer within 2 s" in failed.error
        wait_for(lambda: Task.objects.filter(group="check-now").exists(), 30, "the Check now task to finish")
        page = client.get("/health/")
    [message] = page.context["messages"]
    assert message.level_tag == "error" and str(message).startswith("Check finished: UNKNOWN: ")
    assert "The last check failed" in page.text


# --- monitorcredits by hand ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "scenario, code",
    [("management", Level.OK), ("low", Level.WARNING), ("exhausted", Level.CRITICAL), ("http500", Level.UNKNOWN)],
)
def test_monitorcredits_exits_with_the_worst_level(sim, settings, scenario, code, capsys):
    settings.OPENROUTER_MAX_RETRIES = 0
    sim.set_scenario(scenario)
    with pytest.raises(SystemExit) as exit_:
        call_command("monitorcredits")
    assert exit_.value.code == int(code)
    assert capsys.readouterr().out.startswith(f"{Level(code).label}: ")


@pytest.mark.django_db(transaction=True)
def test_monitorcredits_says_a_run_is_in_progress_and_exits_non_zero(sim, tmp_path):
    assert schedule.acquire_lease(schedule.LEASE_NAME, "worker-1:4242:abcd")
    sim.requests.clear()
    done = subprocess.run(
        [sys.executable, "manage.py", "monitorcredits"],
        cwd=PROJECT_ROOT,
        env=cluster_env(sim, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "A monitoring run is already in progress (held by worker-1:4242:abcd" in done.stderr
    assert "Traceback" not in done.stderr
    assert not CreditLog.objects.exists() and not sim.requests


@pytest.mark.django_db
def test_a_skipped_run_raises_so_the_task_is_stored_as_a_failure(sim):
    assert schedule.acquire_lease(schedule.LEASE_NAME, "another-worker")
    with pytest.raises(tasks.RunInProgress, match="nothing was done"):
        tasks.monitor_job()


@pytest.mark.django_db
def test_a_completed_run_puts_the_planned_run_back_and_frees_the_lease(sim):
    planned = timezone.now() + timedelta(hours=3)
    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(next_run=planned)
    tasks.monitor_job()
    assert Schedule.objects.get(name=schedule.SCHEDULE_NAME).next_run == planned
    assert schedule.held_lease() is None


# --- heartbeat ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_heartbeat_gets_success_after_a_good_run_and_fail_after_a_blind_one(sim, settings, webhook_receiver):
    settings.HEARTBEAT_URL = f"http://{webhook_receiver.url}/ping/abc-123"
    settings.OPENROUTER_MAX_RETRIES = 0
    tasks.monitor_job()
    sim.set_failure("http502")
    tasks.monitor_job()
    assert [r["path"] for r in webhook_receiver.received] == ["/ping/abc-123", "/ping/abc-123/fail"]


@pytest.mark.django_db
def test_heartbeat_fail_url_takes_the_failure_signal_when_set(sim, settings, webhook_receiver):
    settings.HEARTBEAT_URL = f"http://{webhook_receiver.url}/up"
    settings.HEARTBEAT_FAIL_URL = f"http://{webhook_receiver.url}/down?why=blind"
    sim.set_failure("http401")
    tasks.monitor_job()
    assert [r["path"] for r in webhook_receiver.received] == ["/down?why=blind"]


# --- schedules follow their settings -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_changed_interval_reaches_the_schedule_at_migrate(settings):
    settings.CHECK_INTERVAL_MINUTES = 60
    Schedule.objects.create(name=schedule.SCHEDULE_NAME, func=schedule.TASK_FUNC, schedule_type="I", minutes=5)
    call_command("migrate", verbosity=0)
    row = Schedule.objects.get(name=schedule.SCHEDULE_NAME)  # the duplicate is gone
    assert row.minutes == 60
    assert row.next_run <= timezone.now() + timedelta(minutes=60)


@pytest.mark.django_db(transaction=True)
def test_a_changed_interval_reaches_the_schedule_at_worker_start(sim, tmp_path):
    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(
        minutes=360, next_run=timezone.now() + timedelta(hours=6)
    )
    with qcluster(cluster_env(sim, tmp_path, CHECK_INTERVAL_MINUTES=45), tmp_path / "qcluster.out"):
        wait_for(
            lambda: Schedule.objects.filter(name=schedule.SCHEDULE_NAME, minutes=45).exists(),
            60,
            "the worker to sync the schedule",
        )
    row = Schedule.objects.get(name=schedule.SCHEDULE_NAME)
    assert row.next_run <= timezone.now() + timedelta(minutes=45)


@pytest.mark.django_db
def test_a_setting_of_zero_removes_the_schedule(settings):
    settings.CHECK_INTERVAL_MINUTES = 0
    schedule.sync_schedules()
    assert not Schedule.objects.filter(name=schedule.SCHEDULE_NAME).exists()


@pytest.mark.django_db
def test_the_stale_rule_uses_the_interval_the_schedule_really_has(settings):
    settings.CHECK_INTERVAL_MINUTES = 360  # the setting says 6 h, the row (not yet synced) says 1 h
    schedule.sync_schedule(Schedule, 60)
    now = timezone.now()
    key = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
    log = CreditLog.objects.create(key=key, timestamp=now - timedelta(hours=3), ok=True, usage=1.0)
    assert log.ok
    assert schedule.interval_minutes() == 60
    key_status = status.build(now).for_key(key)
    assert alerts.stale_condition(key_status).level == Level.UNKNOWN  # 3 h > 2 x 1 h
    assert key_status.level == Level.UNKNOWN and "No successful check since" in key_status.conditions["stale"][1]

    Schedule.objects.filter(name=schedule.SCHEDULE_NAME).update(minutes=360)
    assert alerts.stale_condition(status.build(now).for_key(key)).level == Level.OK  # 3 h < 2 x 6 h


# --- stopping the worker -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runworker_stops_on_sigterm_after_a_reincarnation_with_no_process_left(sim, tmp_path):
    log = tmp_path / "runworker.out"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runworker"], cwd=PROJECT_ROOT, env=cluster_env(sim, tmp_path),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        ready = wait_for(lambda: re.search(r"ready for work at (\d+)", log.read_text()), 60, "a worker process")
        children = [int(pid) for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()]
        os.kill(int(ready.group(1)), signal.SIGKILL)  # django-q2 reincarnates it; its orderly stop could then hang
        wait_for(lambda: "reincarnated worker" in log.read_text(), 30, "the reincarnation")
        children += [int(pid) for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()]
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert code == 0, log.read_text()[-2000:]
    time.sleep(0.5)
    assert not [pid for pid in set(children) if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
