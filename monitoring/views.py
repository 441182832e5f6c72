"""The dashboard pages: function views building a ctx dict; the page data comes from dashboard.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_q.models import Task

from . import alerts as alert_rules
from . import audit, broker, dashboard, notify, roles, schedule, status
from .models import AgentTask, Alert, AlertEvent, ApiKey, AuditEntry, Level

SNOOZE_CHOICES = [(1, "1 hour"), (8, "8 hours"), (24, "24 hours"), (168, "7 days")]
# A flash message takes the colour of the level the key's card shows.
FLASH = {Level.OK: messages.SUCCESS, Level.WARNING: messages.WARNING, Level.UNKNOWN: messages.WARNING}
EVENTS_PER_PAGE = 25
TASKS_SHOWN = 15  # the newest agent tasks on the Alerts page; the API and the admin list them all
CHECK_NOW = "check_now"  # session key: the queued Check now task and when it was queued
WORKER_SILENT_SECONDS = 20  # a queued check not started by then: say the worker may not be running
CHECK_NOW_GIVE_UP = timedelta(hours=1)  # stop waiting on the page (the task stays queued for the worker)
AUDIT_SHOWN = 25  # the newest audit entries on the Alerts page (the admin has them all)
PICKER_KEYS = 50  # with many keys, Financial's key picker offers the worst this many and the key shown
ALERTS_OPEN_SHOWN = 100  # with many keys, the worst this many open alerts (the API and the admin list them all)
ALERTS_STATES_SHOWN = 100  # with many keys, the worst this many in the current state (System Health has them all)


def in_reporting_zone(view):
    """Render dates in CREDITMON_TIME_ZONE, the zone the daily buckets use."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        with timezone.override(dashboard.reporting_tz()):
            return view(request, *args, **kwargs)

    return wrapper


def operators_only(action: str):
    """The view acts only for an operator (roles.can_operate); anyone else gets 403 with a sentence, nothing done."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not roles.can_operate(request.user):
                raise PermissionDenied(roles.refusal(action))
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def too_soon(request, action: str, what: str, target: str = "") -> bool:
    """Record the action in the audit trail, or say when it may be used again (ACTION_LIMIT_PER_MINUTE)."""
    wait = audit.record_within_limit(request.user, action, target, request)
    if wait is None:
        return False
    messages.error(request, f"{what} was used too often: try again in {wait} s (at most "
                   f"{settings.ACTION_LIMIT_PER_MINUTE} a minute per person).")  # fmt: skip
    return True


@in_reporting_zone
def health(request):
    now = timezone.now()
    found = dashboard.health(now, request.GET.get("q", ""), request.GET.get("page"))
    ctx = {"page": "health", "check_now": pending_check(request, now), **found}
    request.creditmon_status = ctx["status"]  # the context processor's verdict reads it instead of building again
    return render(request, "monitoring/health.html", ctx)


@require_POST
@operators_only("Check now")
def check_now(request):
    """Queue the scheduled job for the worker, under the same run lease: a hanging OpenRouter never holds a page."""
    if schedule.held_lease() is not None:
        messages.info(request, "A check is already running: its result shows here when it ends.")
        return redirect("monitoring-health")
    if too_soon(request, audit.CHECK_NOW, "Check now", "every watched key"):
        return redirect("monitoring-health")
    try:
        task_id = broker.queue(schedule.TASK_FUNC, task_name=f"check-now-{request.user.pk}", group="check-now")
    except broker.BrokerUnavailable as exc:
        messages.error(request, f"Check now could not be queued: {exc}.")
        return redirect("monitoring-health")
    request.session[CHECK_NOW] = {"task": task_id, "queued_at": timezone.now().isoformat()}
    return redirect("monitoring-health")


def pending_check(request, now: datetime) -> dict | None:
    """The state of this user's queued Check now; once it is done, its result as a message."""
    queued = request.session.get(CHECK_NOW)
    if not queued:
        return None
    queued_at = datetime.fromisoformat(queued["queued_at"])
    task = Task.objects.filter(id=queued["task"]).only("success", "result").first()
    if task is None and now - queued_at < CHECK_NOW_GIVE_UP:
        running = schedule.held_lease() is not None
        waited = (now - queued_at).total_seconds()
        pending = {"queued_at": queued_at, "running": running, "no_worker": False}
        if not running and waited > WORKER_SILENT_SECONDS:  # not started yet: no worker, or no broker to reach it
            state, sentence = broker.worker_state()
            pending.update(no_worker=state != broker.WAITING, worker_state=state, worker_message=sentence)
        return pending
    del request.session[CHECK_NOW]
    if task is None:
        messages.warning(request, "Check now got no result within an hour: start the worker: python manage.py qcluster")
    elif not task.success:
        reason = str(task.result).split(" : ")[0]  # django-q2 stores "<error> : <traceback>"
        if "already in progress" in reason:
            messages.info(request, "Another check was running: its result is shown below.")
        else:
            messages.error(request, f"Check now failed: {reason}")
    else:
        level = str(task.result).partition(":")[0]
        report = {"OK": messages.success, "WARNING": messages.warning}.get(level, messages.error)
        report(request, f"Check finished: {task.result}")
    return None


@in_reporting_zone
def financial(request):
    watched = ApiKey.objects.watched()
    keys = list(watched[: settings.STATUS_LIVE_KEYS + 1])
    key = keys[0] if keys else None
    if len(keys) > settings.STATUS_LIVE_KEYS:  # many keys: the picker offers the worst (System Health finds any)
        keys = list(watched.worst_first()[:PICKER_KEYS])
    if wanted := request.GET.get("key", ""):
        key = watched.named(wanted)
        if key is None:
            choices = [(f"{request.path}?key={k.hash[: status.HASH_PREFIX]}", k.display_name) for k in keys]
            return refuse(request, 404, "No such key", f"No watched key has the id or hash “{wanted[:80]}”.", choices)
    if key is not None and key not in keys:
        keys.insert(0, key)
    range_name = request.GET.get("range", dashboard.DEFAULT_RANGE)
    if range_name not in dashboard.RANGES:
        accepted = ", ".join(dashboard.RANGES)
        return refuse(request, 400, "No such range", f"The range “{range_name[:80]}” is not one of {accepted}.")
    ctx = {
        "page": "financial",
        "keys": keys,
        "key": key,
        "range_name": range_name,
        "ranges": [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("all", "All")],
        **dashboard.financial(timezone.now(), key, range_name, request.GET.get("swap", "")[:500]),
    }
    request.creditmon_status = ctx["status"]  # the context processor's verdict reads it instead of building again
    return render(request, "monitoring/financial.html", ctx)


def refuse(request, code: int, title: str, sentence: str, choices: list[tuple[str, str]] | None = None):
    """A page that cannot be shown as asked: the status code and one sentence in the product's look."""
    ctx = {"title": title, "sentence": sentence, "choices": choices or []}
    return render(request, "monitoring/refused.html", ctx, status=code)


@in_reporting_zone
def alerts(request):
    now = timezone.now()
    events = AlertEvent.objects.select_related("alert__key").prefetch_related("deliveries")
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    found = request.creditmon_status = status.build(now, pages=True)  # the page's states and its header's verdict
    shown = found.keys if found.stored is None else found.worst_keys(ALERTS_STATES_SHOWN)
    states = [s for s in shown if s.key is not None]
    open_query = Alert.objects.open().select_related("key", "task").worst_first()
    open_count = open_query.count() if found.stored is not None else None
    # Many keys: the worst ALERTS_OPEN_SHOWN open alerts (thousands of forms would take seconds to draw).
    open_alerts = list(open_query[:ALERTS_OPEN_SHOWN] if found.stored is not None else open_query)
    for alert in open_alerts:
        alert.snoozed_now = alert.snoozed_until is not None and alert.snoozed_until > now
        alert.agent_task = getattr(alert, "task", None)  # None when no task (a reverse one-to-one raises)
    recent_tasks = list(AgentTask.objects.select_related("key", "alert")[:TASKS_SHOWN])
    for task in recent_tasks:
        task.state_now = task.current_state(now)  # an expired claim shows as open, as agents see it
    ctx = {
        "page": "alerts",
        "configured": dashboard.is_configured(),
        "states": dashboard.explain_quiet(states),
        "states_hidden": found.key_count - len(states) if found.stored is not None else 0,
        "open_alerts": open_alerts,
        "open_alert_total": open_count if open_count is not None else len(open_alerts),
        "thresholds": dashboard.thresholds(),
        "events": page,
        "agent_tasks": recent_tasks,
        "snooze_choices": SNOOZE_CHOICES,
        "channels": notify.channels(),
        "now": now,
        "audit_entries": AuditEntry.objects.all()[:AUDIT_SHOWN],
    }
    return render(request, "monitoring/alerts.html", ctx)


def alert_target(alert: Alert) -> str:
    """How the audit trail names an alert."""
    return f"alert {alert.pk}: {alert.get_condition_display()}" + (f" ({alert.key.display_name})" if alert.key else "")


def act_on_alert(request, alert_id, action, nothing: str, already: str, done: str, name: str):
    """One person's action on an alert, told back in a flash message at the level the alert's card shows."""
    alert = get_object_or_404(Alert, pk=alert_id)
    try:
        event = action(alert, request.user)
    except ValueError as exc:
        messages.warning(request, f"{nothing}: {exc}")
        return redirect("monitoring-alerts")
    if event is None:
        messages.info(request, f"{already}: {alert.message}")
    else:
        audit.record(request.user, name, alert_target(alert), request)
        messages.add_message(request, FLASH.get(alert.level, messages.ERROR), done.format(message=alert.message))
    return redirect("monitoring-alerts")


@require_POST
@operators_only("Acknowledging an alert")
def alert_acknowledge(request, alert_id):
    done = "Acknowledged: {message}. No reminders until it resolves; a worse level still notifies."
    return act_on_alert(
        request, alert_id, alert_rules.acknowledge, "Nothing to acknowledge", "Already acknowledged", done,
        audit.ACKNOWLEDGE,
    )  # fmt: skip


@require_POST
@operators_only("Withdrawing an acknowledgement")
def alert_unacknowledge(request, alert_id):
    done = "Acknowledgement withdrawn: {message}. Reminders resume."
    return act_on_alert(
        request, alert_id, alert_rules.unacknowledge, "Nothing to undo", "Not acknowledged", done, audit.UNACKNOWLEDGE
    )


@require_POST
@operators_only("Ending a snooze")
def alert_unsnooze(request, alert_id):
    done = "Snooze ended: {message}. Reminders resume."
    return act_on_alert(request, alert_id, alert_rules.unsnooze, "Nothing to undo", "Not snoozed", done, audit.UNSNOOZE)


@require_POST
@operators_only("Snoozing an alert")
def alert_snooze(request, alert_id):
    alert = get_object_or_404(Alert, pk=alert_id)
    hours = dict(SNOOZE_CHOICES)
    try:
        chosen = int(request.POST.get("hours", ""))
    except ValueError:
        chosen = None
    if chosen not in hours:
        messages.error(request, "Choose how long to snooze: 1 hour, 8 hours, 24 hours or 7 days.")
        return redirect("monitoring-alerts")
    until = timezone.now() + timedelta(hours=chosen)
    try:
        alert_rules.snooze(alert, until, request.user)
    except ValueError as exc:
        messages.warning(request, f"Nothing to snooze: {exc}")
        return redirect("monitoring-alerts")
    audit.record(request.user, audit.SNOOZE, alert_target(alert), request, detail=f"for {hours[chosen]}")
    with timezone.override(dashboard.reporting_tz()):
        when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M %Z")
    messages.add_message(
        request, FLASH.get(alert.level, messages.ERROR), f"Snoozed for {hours[chosen]} (until {when}): {alert.message}"
    )
    return redirect("monitoring-alerts")


@require_POST
@operators_only("Sending a test notification")
def send_test(request):
    if not notify.channels():
        messages.warning(
            request, "No notification channels are configured: set NOTIFY_URLS (Apprise URLs) in .env and restart."
        )
        return redirect("monitoring-alerts")
    if too_soon(request, audit.SEND_TEST, "Send test", "every notification channel"):
        return redirect("monitoring-alerts")
    deliveries = notify.send_test(request.user)
    failed = [d for d in deliveries if d.status != "sent"]
    sent = len(deliveries) - len(failed)
    if failed:
        details = "; ".join(f"{d.channel}: {d.error or d.status}" for d in failed)
        messages.error(request, f"Test notification: {sent} sent, {len(failed)} failed ({details}).")
    else:
        messages.success(request, f"Test notification sent to {sent} channel{'s' if sent != 1 else ''}.")
    return redirect("monitoring-alerts")
