"""django-q2 tasks: the scheduled monitoring job, guarded by a lease and watched by a heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Lease, Level
from .monitor import overall_level, run_monitor
from .retention import prune_credit_log

logger = logging.getLogger("monitoring")

LEASE_NAME = "monitor"
# Longer than Q_CLUSTER's timeout (300 s), so a live run never loses it; a killed run frees it after this.
LEASE_SECONDS = 600
SKIPPED = "skipped: another run in progress"
HEARTBEAT_TIMEOUT = 10


def acquire_lease(name: str, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """Take the named lease unless someone else holds an unexpired one. Uses wall-clock time."""
    now = timezone.now()
    expires = now + timedelta(seconds=seconds)
    with transaction.atomic():
        lease, created = Lease.objects.select_for_update().get_or_create(
            name=name, defaults={"holder": holder, "expires_at": expires}
        )
        if created:
            return True
        if lease.holder and lease.holder != holder and lease.expires_at > now:
            return False
        lease.holder, lease.expires_at = holder, expires
        lease.save(update_fields=["holder", "expires_at"])
        return True


def release_lease(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())


def ping_heartbeat(url: str | None = None) -> bool:
    """GET the dead-man's-switch URL; a failure is logged, never raised (the check itself went fine)."""
    import requests

    url = url if url is not None else settings.HEARTBEAT_URL
    if not url:
        return False
    where = urlsplit(url).netloc or "the heartbeat URL"  # the path often is the secret
    try:
        response = requests.get(url, timeout=HEARTBEAT_TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as exc:
        logger.error("Heartbeat ping to %s failed: %s", where, type(exc).__name__)
        return False
    logger.info("Heartbeat ping to %s: HTTP %s", where, response.status_code)
    return True


def monitor_job(now: datetime | None = None) -> str:
    """Run by the `monitor-openrouter-credits` schedule and by `manage.py monitorcredits`."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not acquire_lease(LEASE_NAME, holder):
        logger.info("Monitoring run skipped: another run holds the lease")
        return SKIPPED
    try:
        statuses = run_monitor(now)
    finally:
        release_lease(LEASE_NAME, holder)
    prune_daily()
    if all(s.log is not None and s.log.ok for s in statuses):
        # Only a run that could see the balance counts as alive: a blind monitor must look dead from outside.
        ping_heartbeat()
    return f"{Level(overall_level(statuses)).label}: " + "; ".join(f"{s.name}: {s.message}" for s in statuses)


def prune_daily() -> None:
    """Thin old credit-log rows once a day when RETENTION_DAYS is set (the lease spaces the runs)."""
    if not settings.RETENTION_DAYS or not acquire_lease("retention", uuid.uuid4().hex, seconds=86400):
        return
    try:
        result = prune_credit_log()
    except Exception:  # thinning is housekeeping: it must never fail the check that just ran
        logger.exception("Credit-log retention failed")
        return
    logger.info("Retention: %s old credit-log rows thinned", result.deleted)
