"""The dashboard pages: function views building a ctx dict; the page data comes from dashboard.py."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_q.tasks import async_task

from . import alerts as alert_rules
from . import dashboard, monitor, notify, status
from .models import Alert, AlertEvent, ApiKey, Level

SNOOZE_CHOICES = [(1, "1 hour"), (8, "8 hours"), (24, "24 hours"), (168, "7 days")]
# A flash message takes the colour of the level the key's card shows.
FLASH = {Level.OK: messages.SUCCESS, Level.WARNING: messages.WARNING, Level.UNKNOWN: messages.WARNING}
EVENTS_PER_PAGE = 25


def in_reporting_zone(view):
    """Render dates in CREDITMON_TIME_ZONE, the zone the daily buckets use."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        with timezone.override(dashboard.reporting_tz()):
            return view(request, *args, **kwargs)

    return wrapper


@in_reporting_zone
def health(request):
    ctx = {"page": "health", **dashboard.health(timezone.now())}
    request.creditmon_status = ctx["status"]  # the context processor's verdict reads it instead of building again
    return render(request, "monitoring/health.html", ctx)


@require_POST
def check_now(request):
    """The same check as `checkcredits`, then the alert rules; the result as messages."""
    now = timezone.now()
    found = monitor.check_all(now=now)
    if alert_rules.evaluate(found, now):
        # Notifications go out from the worker, so a slow mail server never holds this page up.
        async_task("monitoring.notify.deliver_pending", task_name="deliver-after-check-now")
    for key_status in found.keys:  # the level and words the cards show
        text = f"{key_status.name}: {key_status.message}"
        if key_status.level == Level.OK:
            remaining = "unknown" if key_status.remaining is None else f"${key_status.remaining:,.2f}"
            messages.success(request, f"{text} ({remaining} remaining)")
        elif key_status.log is not None and not key_status.log.ok:
            messages.error(
                request, f"Check failed for {key_status.name} ({key_status.level_name}): {key_status.message}"
            )
        elif key_status.level == Level.CRITICAL:
            messages.error(request, f"{Level(key_status.level).label}: {text}")
        else:
            messages.warning(request, f"{Level(key_status.level).label}: {text}")
    return redirect("monitoring-health")


@in_reporting_zone
def financial(request):
    keys = list(ApiKey.objects.watched())
    key = keys[0] if keys else None
    wanted = request.GET.get("key", "")
    if wanted:
        key = next((k for k in keys if str(k.pk) == wanted), None)
        if key is None:
            messages.warning(request, "That key is not being watched: showing the primary key instead.")
            key = keys[0] if keys else None
    range_name = request.GET.get("range", dashboard.DEFAULT_RANGE)
    if range_name not in dashboard.RANGES:
        range_name = dashboard.DEFAULT_RANGE
    ctx = {
        "page": "financial",
        "keys": keys,
        "key": key,
        "range_name": range_name,
        "ranges": [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("all", "All")],
        **dashboard.financial(timezone.now(), key, range_name),
    }
    return render(request, "monitoring/financial.html", ctx)


@in_reporting_zone
def alerts(request):
    now = timezone.now()
    events = AlertEvent.objects.select_related("alert__key").prefetch_related("deliveries")
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    found = request.creditmon_status = status.build(now)  # the page's states and the verdict in its header
    states = [s for s in found.keys if s.key is not None]
    open_alerts = list(Alert.objects.open().select_related("key").worst_first())
    for alert in open_alerts:
        alert.snoozed_now = alert.snoozed_until is not None and alert.snoozed_until > now
    ctx = {
        "page": "alerts",
        "configured": dashboard.is_configured(),
        "states": dashboard.explain_quiet(states),
        "open_alerts": open_alerts,
        "thresholds": dashboard.thresholds(),
        "events": page,
        "snooze_choices": SNOOZE_CHOICES,
        "channels": notify.channels(),
        "now": now,
    }
    return render(request, "monitoring/alerts.html", ctx)


@require_POST
def alert_acknowledge(request, alert_id):
    alert = get_object_or_404(Alert, pk=alert_id)
    try:
        event = alert_rules.acknowledge(alert, request.user)
    except ValueError as exc:
        messages.warning(request, f"Nothing to acknowledge: {exc}")
        return redirect("monitoring-alerts")
    if event is None:
        messages.info(request, f"Already acknowledged: {alert.message}")
    else:
        messages.add_message(
            request,
            FLASH.get(alert.level, messages.ERROR),
            f"Acknowledged: {alert.message}. No reminders until it resolves; a worse level still notifies.",
        )
    return redirect("monitoring-alerts")


@require_POST
def alert_unacknowledge(request, alert_id):
    alert = get_object_or_404(Alert, pk=alert_id)
    try:
        event = alert_rules.unacknowledge(alert, request.user)
    except ValueError as exc:
        messages.warning(request, f"Nothing to undo: {exc}")
        return redirect("monitoring-alerts")
    if event is None:
        messages.info(request, f"Not acknowledged: {alert.message}")
    else:
        level = FLASH.get(alert.level, messages.ERROR)
        messages.add_message(request, level, f"Acknowledgement withdrawn: {alert.message}. Reminders resume.")
    return redirect("monitoring-alerts")


@require_POST
def alert_unsnooze(request, alert_id):
    alert = get_object_or_404(Alert, pk=alert_id)
    try:
        event = alert_rules.unsnooze(alert, request.user)
    except ValueError as exc:
        messages.warning(request, f"Nothing to undo: {exc}")
        return redirect("monitoring-alerts")
    if event is None:
        messages.info(request, f"Not snoozed: {alert.message}")
    else:
        messages.add_message(
            request, FLASH.get(alert.level, messages.ERROR), f"Snooze ended: {alert.message}. Reminders resume."
        )
    return redirect("monitoring-alerts")


@require_POST
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
    with timezone.override(dashboard.reporting_tz()):
        when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M %Z")
    messages.add_message(
        request, FLASH.get(alert.level, messages.ERROR), f"Snoozed for {hours[chosen]} (until {when}): {alert.message}"
    )
    return redirect("monitoring-alerts")


@require_POST
def send_test(request):
    deliveries = notify.send_test(request.user)
    if not deliveries:
        messages.warning(
            request, "No notification channels are configured: set NOTIFY_URLS (Apprise URLs) in .env and restart."
        )
        return redirect("monitoring-alerts")
    failed = [d for d in deliveries if d.status != "sent"]
    sent = len(deliveries) - len(failed)
    if failed:
        details = "; ".join(f"{d.channel}: {d.error or d.status}" for d in failed)
        messages.error(request, f"Test notification: {sent} sent, {len(failed)} failed ({details}).")
    else:
        messages.success(request, f"Test notification sent to {sent} channel{'s' if sent != 1 else ''}.")
    return redirect("monitoring-alerts")
