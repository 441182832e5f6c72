"""The declared django-q2 schedules, kept in step with their settings, and the lease that makes a run crash-safe.

Each entry of SCHEDULES is one schedule row, synced by name at `migrate` and at every worker start, so a
changed interval setting takes effect without a new migration (0 or less removes the row).

A run holds a short lease that a thread renews while the run lives, and moves its schedule's next run to a
near retry point; a completed run puts the planned time back. A run killed at any point (kill -9, the
out-of-memory killer, a lost host) leaves a due schedule behind and a lease that lapses within seconds, so
django-q2's scheduler (it polls every 30 s) runs it again once any worker is back, on the ORM broker and on
Redis (which never redelivers the task of a dead worker).

Models are looked up through the app registry, not imported: apps.py imports this module at start-up to
connect its signal handlers, before the models are loaded.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

logger = logging.getLogger("monitoring")


@dataclass(frozen=True)
class Declared:
    """One schedule: its row name, the task it queues, and the setting giving its interval in minutes."""

    name: str
    func: str
    minutes_setting: str
    at_once: bool = True  # a new row runs at once (the check), or one interval later (the watch: nothing to compare)

    @property
    def minutes(self) -> int:
        return int(getattr(settings, self.minutes_setting, 0) or 0)


SCHEDULE_NAME = "monitor-openrouter-credits"
TASK_FUNC = "monitoring.tasks.monitor_job"
WATCH_SCHEDULE_NAME = "watch-openrouter-spend"  # the light spend watch between the scheduled checks
WATCH_LEASE = "watch"
# One entry per schedule; a setting at 0 (or below) means no such schedule.
SCHEDULES: list[Declared] = [
    Declared(SCHEDULE_NAME, TASK_FUNC, "CHECK_INTERVAL_MINUTES"),
    Declared(WATCH_SCHEDULE_NAME, "monitoring.tasks.watch_job", "WATCH_INTERVAL_MINUTES", at_once=False),
]
# The migration that first declared a schedule: before it (or migrated back past it) nothing is synced.
DECLARING_MIGRATION = ("monitoring", "0002_monitor_schedule")

LEASE_NAME = "monitor"


@dataclass(frozen=True)
class AbandonedRun:
    """A run that took the lease and never gave it back: killed (out of memory, kill -9) or its worker gone."""

    holder: str
    last_alive: datetime

    def reason(self) -> str:
        when = timezone.localtime(self.last_alive).strftime("%Y-%m-%d %H:%M:%S %Z")
        return (
            f"The run started by {self.holder} never finished (last sign of life {when}): its worker was killed "
            "(out of memory, kill -9) or vanished; it was run again"
        )


class RunInProgress(Exception):
    """Another live run holds the lease: this one did nothing (and must not be counted as a success)."""


# --- the schedule rows ---------------------------------------------------------------------------


def schedule_model():
    return apps.get_model("django_q", "Schedule")


def sync_schedule(model, interval_minutes: int, name: str = SCHEDULE_NAME, func: str = TASK_FUNC, at_once=True):
    """Create or update the schedule by name, so re-running leaves exactly one row; None when switched off."""
    rows = model.objects.filter(name=name).order_by("id")
    if interval_minutes <= 0:
        rows.delete()
        return None
    keep = rows.first()
    if keep is not None:
        rows.exclude(pk=keep.pk).delete()
    schedule, created = model.objects.update_or_create(
        name=name,
        defaults={"func": func, "schedule_type": "I", "minutes": interval_minutes, "repeats": -1},  # "I": MINUTES
    )
    now = timezone.now()
    soonest = now + timedelta(minutes=interval_minutes)
    if created or schedule.next_run is None:
        schedule.next_run = now if at_once else soonest
    elif schedule.next_run > soonest:
        schedule.next_run = soonest  # a shortened interval applies from now, not after the old, longer wait
    else:
        return schedule
    schedule.save(update_fields=["next_run"])
    return schedule


def sync_schedules(model=None) -> list:
    """Every declared schedule at its setting's interval, in one transaction (workers may start together)."""
    model = model or schedule_model()
    with transaction.atomic(using=model.objects.db):
        return [sync_schedule(model, d.minutes, d.name, d.func, d.at_once) for d in SCHEDULES]


def sync_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate (migrate, and flush): follow the settings, unless migrated back before they were declared."""
    if DECLARING_MIGRATION not in MigrationRecorder(connections[using]).applied_migrations():
        return
    state = kwargs.get("apps") or apps  # migrate passes the migrated state; flush does not
    sync_schedules(state.get_model("django_q", "Schedule"))


def sync_at_worker_start(sender, proc_name: str = "", **kwargs) -> None:
    """django-q2's post_spawn, in each new worker process: a changed setting applies without a migrate."""
    try:
        sync_schedules()
    except DatabaseError as exc:  # the worker must still start; the migrate-time sync remains
        logger.error("Could not sync the schedules at worker start: %s", str(exc).splitlines()[0])
    finally:
        connections.close_all()  # the worker opens its own per task


def stop_cleanly_on_sigterm(sender, **kwargs) -> None:
    """django-q2's post_spawn: SIGTERM to a worker (a shutdown's, or the task timeout's) unwinds a run in progress,
    which records why it stopped and releases its lease, instead of dying with the lease held."""
    signal.signal(signal.SIGTERM, _exit_worker)


def _exit_worker(signum, frame) -> None:
    raise SystemExit(f"worker stopped by {signal.Signals(signum).name}")


def interval_minutes(name: str = SCHEDULE_NAME) -> int:
    """The interval the named schedule really runs at (its row), else what its setting asks for."""
    minutes = schedule_model().objects.filter(name=name).values_list("minutes", flat=True).first()
    if minutes:
        return minutes
    return next((d.minutes for d in SCHEDULES if d.name == name), settings.CHECK_INTERVAL_MINUTES)


# --- the lease -----------------------------------------------------------------------------------


def lease_model():
    return apps.get_model("monitoring", "Lease")


def lease_seconds() -> float:
    """Half the retry delay: a dead run's lease has lapsed by the time its schedule comes due again."""
    return max(settings.RUN_RETRY_SECONDS / 2, 1.0)


def acquire_lease(name: str, holder: str, seconds: float | None = None) -> bool:
    """Take the named lease unless someone else holds an unexpired one. Uses wall-clock time."""
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds() if seconds is None else seconds)
    with transaction.atomic():
        lease, created = (
            lease_model()
            .objects.select_for_update()
            .get_or_create(name=name, defaults={"holder": holder, "expires_at": expires})
        )
        if created:
            return True
        if lease.holder and lease.holder != holder and lease.expires_at > now:
            return False
        lease.holder, lease.expires_at = holder, expires
        lease.save(update_fields=["holder", "expires_at"])
        return True


def release_lease(name: str, holder: str) -> None:
    lease_model().objects.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())


def held_lease(name: str = LEASE_NAME):
    """The lease row while a live run holds it, else None."""
    return lease_model().objects.filter(name=name, expires_at__gt=timezone.now()).exclude(holder="").first()


def in_progress_message(lease) -> str:
    until = timezone.localtime(lease.expires_at).strftime("%H:%M:%S %Z")
    return f"A monitoring run is already in progress (held by {lease.holder}, renewed until {until}): nothing was done"


class GuardedRun:
    """`with GuardedRun(): ...`: the lease for the run's life, and the schedule's retry point while it lasts.

    Raises RunInProgress on entry when another live run holds the lease.
    """

    def __init__(self, lease: str = LEASE_NAME, schedule: str = SCHEDULE_NAME):
        self.lease, self.schedule = lease, schedule
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.planned: datetime | None = None  # the schedule's next run before this one moved it
        self.retry_at: datetime | None = None  # the retry point this run last wrote
        self.abandoned: AbandonedRun | None = None  # a previous run found dead when this one took the lease
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> GuardedRun:
        dead = lease_model().objects.filter(name=self.lease, expires_at__lte=timezone.now()).exclude(holder="")
        dead = dead.values_list("holder", "expires_at").first()  # released leases have no holder: this one died
        if not acquire_lease(self.lease, self.holder):
            lease = held_lease(self.lease)
            raise RunInProgress(in_progress_message(lease) if lease else "A monitoring run is already in progress")
        if dead is not None:
            self.abandoned = AbandonedRun(dead[0], dead[1] - timedelta(seconds=lease_seconds()))
        try:
            rows = schedule_model().objects.filter(name=self.schedule)
            self.planned = rows.values_list("next_run", flat=True).first()
            self._push_retry_point()
        except BaseException:
            release_lease(self.lease, self.holder)
            raise
        self._thread = threading.Thread(target=self._keep_alive, name=f"lease-{self.lease}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        # Stopped from outside (the task timeout, a shutdown): the retry point stays, so it runs again soon.
        if exc_type is None or issubclass(exc_type, Exception):
            self._restore_planned_run()
        release_lease(self.lease, self.holder)

    def _push_retry_point(self) -> None:
        """While this run lives its schedule is due soon after: if the run dies, the scheduler runs it again."""
        retry_at = timezone.now() + timedelta(seconds=settings.RUN_RETRY_SECONDS)
        with self._lock:
            rows = schedule_model().objects.filter(name=self.schedule)
            if self.retry_at is not None:
                rows = rows.filter(next_run=self.retry_at)  # someone else moved it (an admin, a new interval)
            if rows.update(next_run=retry_at):
                self.retry_at = retry_at

    def _restore_planned_run(self) -> None:
        if self.retry_at is None:
            return
        now = timezone.now()
        planned = self.planned
        if planned is None or planned <= now:  # the run that was due is this one: the next is an interval away
            planned = now + timedelta(minutes=interval_minutes(self.schedule))
        schedule_model().objects.filter(name=self.schedule, next_run=self.retry_at).update(next_run=planned)

    def _keep_alive(self) -> None:
        every = lease_seconds() / 3
        try:
            while not self._stop.wait(every):
                if time.monotonic() - self.started > settings.RUN_TIMEOUT_SECONDS:
                    # Past the task timeout a run is stuck, not slow: its lease lapses so the next run takes over.
                    logger.error("The %s run has outlived the task timeout: its lease is left to lapse", self.lease)
                    return
                try:
                    expires = timezone.now() + timedelta(seconds=lease_seconds())
                    kept = lease_model().objects.filter(name=self.lease, holder=self.holder).update(expires_at=expires)
                    if not kept:
                        logger.error("Lost the %s lease: another run may overlap this one", self.lease)
                    self._push_retry_point()
                except DatabaseError as exc:  # try again next beat; the lease has slack for two misses
                    logger.warning("Could not renew the %s lease: %s", self.lease, str(exc).splitlines()[0])
        finally:
            connections.close_all()  # this thread's own connections
