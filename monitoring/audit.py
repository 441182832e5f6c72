"""The audit trail: every state-changing action, who did it, when, from which address or with which token.

Entry points call `record` after an action took effect (acknowledge, snooze and their undos, Check now, Send
test, agent-task actions). `record_within_limit` also rate-limits an action per person, counted from the
trail itself, so the limit holds across every web worker without a shared cache.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from ipaddress import ip_address

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .models import AuditEntry

logger = logging.getLogger("monitoring")

ACKNOWLEDGE, UNACKNOWLEDGE = "acknowledge", "unacknowledge"
SNOOZE, UNSNOOZE = "snooze", "unsnooze"
CHECK_NOW, SEND_TEST = "check_now", "send_test"
TASK_CLAIM, TASK_COMPLETE, TASK_DISMISS = "task_claim", "task_complete", "task_dismiss"
TASK_ACTIONS = {"claim": TASK_CLAIM, "complete": TASK_COMPLETE, "dismiss": TASK_DISMISS}


def client_address(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or behind a proxy (DJANGO_BEHIND_PROXY) the address it appended last to
    X-Forwarded-For, the only part a client cannot forge."""
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")


def _address(request: HttpRequest | None) -> str | None:
    found = client_address(request) if request is not None else None
    try:
        return str(ip_address(found)) if found else None
    except ValueError:  # not an address (a proxy's odd header): not stored rather than refused
        return None


def actor_name(actor) -> str:
    """A user's username, or the text given (a token's role, an agent's name)."""
    name = actor.get_username() if hasattr(actor, "get_username") else str(actor or "")
    return name[:150] or "(unknown)"


def record(
    actor,
    action: str,
    target: str = "",
    request: HttpRequest | None = None,
    token_role: str | None = None,
    detail: str = "",
    now: datetime | None = None,
) -> AuditEntry:
    """Append one entry: `actor` is a user or a name, `target` what was acted on (e.g. "alert 12: ...")."""
    entry = AuditEntry.objects.create(
        created=now or timezone.now(),
        actor=actor_name(actor),
        action=action[:40],
        target=str(target)[:300],
        address=_address(request),
        token_role=token_role or "",
        detail=detail,
    )
    logger.info("Audit: %s %s %s", entry.actor, entry.action, entry.target)
    return entry


def record_within_limit(
    actor, action: str, target: str = "", request: HttpRequest | None = None, limit: int | None = None
) -> int | None:
    """Record the action unless `actor` did it `limit` times in the last minute (ACTION_LIMIT_PER_MINUTE).

    Returns None when recorded (go ahead), else the seconds to wait. Counted under a lock on the user's row,
    so simultaneous requests from one person cannot all slip through.
    """
    limit = settings.ACTION_LIMIT_PER_MINUTE if limit is None else limit
    name = actor_name(actor)
    now = timezone.now()
    with transaction.atomic():
        if getattr(actor, "pk", None) is not None:  # one person's requests queue here (SQLite: IMMEDIATE does it)
            list(get_user_model().objects.select_for_update().filter(pk=actor.pk).values_list("pk", flat=True))
        recent = AuditEntry.objects.filter(actor=name, action=action, created__gt=now - timedelta(minutes=1))
        times = sorted(recent.values_list("created", flat=True))
        if limit and len(times) >= limit:
            wait = times[len(times) - limit] + timedelta(minutes=1) - now
            return max(1, math.ceil(wait.total_seconds()))
        record(actor, action, target, request, now=now)
    return None
