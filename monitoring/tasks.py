"""django-q2 tasks: the scheduled monitoring job, run under the crash-safe lease and reported to the heartbeat."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django_q.exceptions import TimeoutException

from .models import Level
from .monitor import overall_level, record_run_failure, run_monitor
from .retention import prune_credit_log
from .schedule import (
    LEASE_NAME,
    SCHEDULE_NAME,
    WATCH_LEASE,
    WATCH_SCHEDULE_NAME,
    GuardedRun,
    RunInProgress,
    acquire_lease,
    release_lease,
)
from .status import Status

__all__ = ["LEASE_NAME", "RunInProgress", "acquire_lease", "release_lease", "monitor_job", "run_job"]
from .watch import run_watch

logger = logging.getLogger("monitoring")

HEARTBEAT_TIMEOUT = 10


def heartbeat_url(failed: bool) -> str:
    """Where a completed run reports: the success URL, or the failure signal when the checks failed."""
    if failed and settings.HEARTBEAT_FAIL_URL:
        return settings.HEARTBEAT_FAIL_URL
    if failed and settings.HEARTBEAT_URL:
        parts = urlsplit(settings.HEARTBEAT_URL)  # healthchecks' convention: <ping URL>/fail
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))
    return settings.HEARTBEAT_URL


def ping_heartbeat(failed: bool = False) -> bool:
    """GET the dead-man's-switch URL; a failure is logged, never raised (the run itself is done)."""
    url = heartbeat_url(failed)
    if not url:
        return False
    where = urlsplit(url).netloc or "the heartbeat URL"  # the path often is the secret
    try:
        response = requests.get(url, timeout=HEARTBEAT_TIMEOUT, allow_redirects=False)
        response.raise_for_status()
    except requests.RequestException as exc:
        logger.error("Heartbeat ping to %s failed: %s", where, type(exc).__name__)
        return False
    logger.info("Heartbeat ping to %s (%s): HTTP %s", where, "fail" if failed else "ok", response.status_code)
    return True


def run_job(now: datetime | None = None) -> Status:
    """One monitoring run under the lease. Raises RunInProgress, untouched, when another live run holds it.

    A run stopped from outside (django-q2's task timeout, a shutdown) is a failed row with the reason, and its
    schedule stays due soon; a run killed outright is found by the next one, which records it the same way.
    """
    with GuardedRun(LEASE_NAME, SCHEDULE_NAME) as run:
        if run.abandoned is not None:
            record_run_failure(run.abandoned.reason())
            ping_heartbeat(failed=True)  # the dead run could not say so itself
        try:
            statuses = run_monitor(now)
        except Exception:
            ping_heartbeat(failed=True)  # it ran and failed: neither dead nor healthy
            raise
        except BaseException as exc:  # TimeoutException (a SystemExit), or a shutdown's SystemExit
            record_run_failure(stopped_reason(exc))
            ping_heartbeat(failed=True)
            raise
    # Only a run that saw every balance counts as healthy: a blind monitor reports failure, a dead one nothing.
    ping_heartbeat(failed=not all(s.log is not None and s.log.ok for s in statuses))
    prune_daily()
    return statuses


def stopped_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutException):  # "Task exceeded maximum timeout value (300 seconds)"
        return f"The run was stopped by django-q2's task timeout ({exc}) before it finished: it runs again soon"
    return f"The run was stopped before it finished ({exc or type(exc).__name__}); it runs again within minutes"


def summary(statuses: Status) -> str:
    return f"{Level(overall_level(statuses)).label}: " + "; ".join(f"{s.name}: {s.message}" for s in statuses)


def monitor_job(now: datetime | None = None) -> str:
    """Run by the `monitor-openrouter-credits` schedule, by Check now, and by `manage.py monitorcredits`.

    A run skipped because another holds the lease raises, so django-q2 stores it as a failure, never a success.
    """
    return summary(run_job(now))


def prune_daily() -> None:
    """Thin old credit-log rows once a day when RETENTION_DAYS is set (the lease spaces the runs)."""
    if not settings.RETENTION_DAYS or not acquire_lease("retention", uuid.uuid4().hex, seconds=86400):
        return
    try:
        result = prune_credit_log()
    except Exception:  # thinning is housekeeping: it must never fail the check that just ran
        logger.exception("Credit-log retention failed")
        return
    logger.info("Retention: %s old credit-log rows thinned, %s audit entries", result.deleted, result.audit_deleted)


def watch_job(now: datetime | None = None) -> str:
    """Run by the `watch-openrouter-spend` schedule: the light spend watch, under its own crash-safe lease."""
    if settings.WATCH_INTERVAL_MINUTES <= 0:
        return "watch off (WATCH_INTERVAL_MINUTES=0)"
    with GuardedRun(WATCH_LEASE, WATCH_SCHEDULE_NAME):
        paces = run_watch(now)
    runaways = [p.key.display_name for p in paces if p.runaway]
    return f"runaway: {', '.join(runaways)}" if runaways else f"watched {len(paces)} keys: no runaway"
