"""Agent tasks posted to AGENT_WEBHOOK_URL: signed JSON, one TaskDelivery row per attempt.

The body is `{"event": "task.created|task.updated|task.closed", "task": {...}}` (the schema ships in
monitoring/schemas/task-webhook.v1.json), signed like GitHub's webhooks:
`X-Creditmon-Signature: sha256=<hex HMAC-SHA256 of the raw body under AGENT_WEBHOOK_SECRET>`.
A row is written when the task changes (in its transaction) and sent by `deliver_pending()`, which the
check runs call after the notifications: a failed attempt is a row with its reason, retried as a new row
on the next run up to NOTIFY_MAX_ATTEMPTS, and a dead receiver costs at most AGENT_WEBHOOK_TIMEOUT.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime

import requests
from django.conf import settings
from django.utils import timezone

from .logredact import redact
from .models import AgentTask, TaskDelivery

logger = logging.getLogger("monitoring")

CREATED, UPDATED, CLOSED = "task.created", "task.updated", "task.closed"
EVENTS = (CREATED, UPDATED, CLOSED)
SIGNATURE_HEADER = "X-Creditmon-Signature"
SESSION = requests.Session()  # one connection pool for the process


def signature(body: bytes, secret: str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the raw body under the secret (GitHub's X-Hub-Signature-256 style)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(event: str, document: dict) -> str:
    """The exact text posted: compact, keys in a stable order, so the signature covers what is stored."""
    return json.dumps({"event": event, "task": document}, sort_keys=True, separators=(",", ":"))


def queue(task: AgentTask, event: str, document: dict, now: datetime) -> TaskDelivery | None:
    """A pending delivery of this event (call inside the task's transaction); none without AGENT_WEBHOOK_URL."""
    if not settings.AGENT_WEBHOOK_URL:
        return None
    return TaskDelivery.objects.create(
        task=task, event=event, message_id=str(uuid.uuid4()), body=payload(event, document), created=now
    )


def post(delivery: TaskDelivery) -> tuple[bool, int | None, str]:
    """One POST: (delivered, HTTP status, error). Any 2xx is delivered; the rest is a reason to retry."""
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "creditmon",
        "X-Creditmon-Event": delivery.event,
        "X-Creditmon-Delivery": delivery.message_id,
    }
    if settings.AGENT_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = signature(body, settings.AGENT_WEBHOOK_SECRET)
    try:
        response = SESSION.post(
            settings.AGENT_WEBHOOK_URL, data=body, headers=headers, timeout=settings.AGENT_WEBHOOK_TIMEOUT
        )
    except requests.RequestException as exc:
        return False, None, redact(f"{type(exc).__name__}: {exc}")[:2000]
    if 200 <= response.status_code < 300:
        return True, response.status_code, ""
    return False, response.status_code, f"the receiver answered HTTP {response.status_code}"


def attempt(delivery: TaskDelivery, now: datetime) -> TaskDelivery:
    """Claim the pending row (an overlapping run cannot send it too), post it, record the result."""
    if not TaskDelivery.objects.filter(pk=delivery.pk, status=TaskDelivery.PENDING, attempted_at=None).update(
        attempted_at=now
    ):
        return delivery
    started = time.monotonic()
    if settings.AGENT_WEBHOOK_URL:
        ok, http_status, error = post(delivery)
    else:
        ok, http_status, error = False, None, "AGENT_WEBHOOK_URL is no longer set: not retried"
    delivery.status = TaskDelivery.SENT if ok else TaskDelivery.FAILED
    delivery.http_status, delivery.error, delivery.attempted_at = http_status, error, now
    delivery.duration_ms = int((time.monotonic() - started) * 1000)
    delivery.save(update_fields=["status", "http_status", "error", "attempted_at", "duration_ms"])
    if ok:
        ms = delivery.duration_ms
        logger.info("Task webhook %s for task %s delivered (%d ms)", delivery.event, delivery.task_id, ms)
    else:
        left = "will retry next run" if delivery.attempt < settings.NOTIFY_MAX_ATTEMPTS else "giving up"
        logger.error(
            "Task webhook %s for task %s failed (attempt %d, %s): %s",
            delivery.event,
            delivery.task_id,
            delivery.attempt,
            left,
            error,
        )
    return delivery


def retries(now: datetime) -> list[TaskDelivery]:
    """A new pending row for each failed attempt that has attempts left (marked retried, so only once)."""
    if not settings.AGENT_WEBHOOK_URL:
        return []
    made = []
    failed = TaskDelivery.objects.filter(
        status=TaskDelivery.FAILED, retried=False, attempt__lt=settings.NOTIFY_MAX_ATTEMPTS
    ).order_by("created", "id")
    for old in failed:
        if not TaskDelivery.objects.filter(pk=old.pk, retried=False).update(retried=True):
            continue  # another run retries it
        made.append(
            TaskDelivery.objects.create(
                task_id=old.task_id,
                event=old.event,
                message_id=old.message_id,
                attempt=old.attempt + 1,
                body=old.body,
                created=now,
            )
        )
    return made


def deliver_pending(now: datetime | None = None, task: AgentTask | None = None) -> list[TaskDelivery]:
    """Retry what failed before, then send every pending delivery, oldest first. Never raises.

    `task`: only that task's pending deliveries, no retries (an agent's action answers without waiting on
    the backlog of a slow receiver; the next check run retries)."""
    now = now or timezone.now()
    try:
        todo = TaskDelivery.objects.filter(status=TaskDelivery.PENDING, attempted_at=None)
        if task is not None:
            todo = todo.filter(task=task)
        else:
            retries(now)
        return [attempt(delivery, now) for delivery in todo.order_by("created", "id")]
    except Exception:  # the webhook is a side road: a bug here must not fail the check that called it
        logger.exception("Task webhook delivery failed")
        return []
