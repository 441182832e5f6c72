"""Alert conditions and the alert lifecycle (open, escalate, de-escalate, resolve).

`evaluate()` turns the checks of one run into `Condition`s (one per key and condition), then syncs
them with the `Alert` rows: every transition is an `AlertEvent`, and events that should reach a
person get their `Delivery` rows in the same transaction (sent afterwards by `notify`).
A condition that was not evaluated this run (for example the balance when the check failed) is
simply absent, so its open alert stays as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import forecast
from .models import SEVERITY, Alert, AlertEvent, ApiKey, CreditLog, Lease, Level

logger = logging.getLogger("monitoring")

# A row locked for the length of one sync, so two overlapping runs apply transitions one after the other.
SYNC_LOCK = "alert-sync"


@dataclass
class Condition:
    """One evaluated condition. Level OK means "fine now": an open alert for it resolves."""

    key: ApiKey | None
    condition: str  # one of Alert.CONDITION_CHOICES
    level: int  # models.Level
    message: str
    value: float | None = None
    subject: str = ""  # e.g. the model of a model spike; "" for most conditions


def worse(a: int, b: int) -> int:
    return a if SEVERITY[Level(a)] >= SEVERITY[Level(b)] else b


def milder(a: int, b: int) -> int:
    return a if SEVERITY[Level(a)] <= SEVERITY[Level(b)] else b


def money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


# --- conditions per key ---------------------------------------------------------------------


def balance_level(remaining: float) -> int:
    if remaining <= settings.OPENROUTER_MIN_BALANCE:
        return Level.CRITICAL
    if remaining < settings.OPENROUTER_CREDIT_THRESHOLD:
        return Level.WARNING
    return Level.OK


def balance_condition(status, open_alert: Alert | None) -> Condition | None:
    """Warning below the threshold, critical at or below the minimum; sticky by the hysteresis margin."""
    from .monitor import threshold_level

    remaining = status.remaining
    if remaining is None:
        return None  # unknown balance: nothing to say about it (the health page explains why)
    level = raw = balance_level(remaining)
    message = threshold_level(remaining, settings.OPENROUTER_CREDIT_THRESHOLD)[1]
    if open_alert is not None and SEVERITY[Level(open_alert.level)] > SEVERITY[Level(raw)]:
        # A balance hovering at a line must clear it by the margin before the alert eases.
        margin = settings.ALERT_HYSTERESIS * settings.OPENROUTER_CREDIT_THRESHOLD
        level = worse(raw, milder(open_alert.level, balance_level(remaining - margin)))
        if level != raw:
            line = settings.OPENROUTER_CREDIT_THRESHOLD if level == Level.WARNING else settings.OPENROUTER_MIN_BALANCE
            message = (
                f"Credits {money(remaining)} remaining: not yet clear of the {money(line)} line "
                f"(the alert eases above {money(line + margin)})"
            )
    return Condition(status.key, Alert.BALANCE, level, message, remaining)


def forecast_level(days_left: float | None) -> int:
    if days_left is None:
        return Level.OK  # not spending: never runs out at this rate
    if days_left < settings.FORECAST_CRITICAL_DAYS:
        return Level.CRITICAL
    if days_left < settings.FORECAST_WARNING_DAYS:
        return Level.WARNING
    return Level.OK


def forecast_condition(status, open_alert: Alert | None) -> Condition | None:
    """Days left below the horizons; sticky by the hysteresis margin (a share of the warning horizon)."""
    if status.remaining is None or status.burn_rate is None:
        return None  # not enough history to forecast
    if status.remaining <= settings.OPENROUTER_MIN_BALANCE:
        return None  # already out: the balance alert tells that story
    days = status.days_left
    level = raw = forecast_level(days)
    if open_alert is not None and days is not None and SEVERITY[Level(open_alert.level)] > SEVERITY[Level(raw)]:
        margin = settings.ALERT_HYSTERESIS * settings.FORECAST_WARNING_DAYS
        level = worse(raw, milder(open_alert.level, forecast_level(days - margin)))
    if days is None:
        message = "Not running out: no spend in the burn-rate window"
    elif level == Level.OK:
        message = f"{days:.1f} days left at the current rate"
    else:
        message = f"Runs out in {days:.1f} days at {money(status.burn_rate)}/day ({money(status.remaining)} left)"
    return Condition(status.key, Alert.FORECAST, level, message, days)


def spike_condition(status, now: datetime) -> Condition | None:
    """Today's spend far above the average of the days before today."""
    window = settings.BURN_RATE_WINDOW_DAYS
    tz = ZoneInfo(settings.CREDITMON_TIME_ZONE)
    samples = CreditLog.objects.usage_samples(status.key, now - timedelta(days=window + 1))
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    average = forecast.burn_rate_per_day([s for s in samples if s[0] <= midnight], midnight, window)
    if average is None:
        return None  # no history before today to compare with
    today = forecast.spend_today(samples, now, tz)
    if forecast.is_spike(today, average, settings.SPIKE_FACTOR, settings.SPIKE_MIN_USD):
        message = f"Spent {money(today)} today, over {settings.SPIKE_FACTOR:g}x the {money(average)}/day average"
        return Condition(status.key, Alert.SPIKE, Level.WARNING, message, today)
    return Condition(status.key, Alert.SPIKE, Level.OK, f"Spent {money(today)} today (average {money(average)}/day)")


def consecutive_failures(key: ApiKey | None, limit: int) -> tuple[int, str]:
    """How many of the latest checks failed in a row (looking at most `limit` back), and the last error."""
    rows = list(CreditLog.objects.for_key(key).order_by("-timestamp", "-id").values_list("ok", "error")[:limit])
    count = 0
    for ok, _ in rows:
        if ok:
            break
        count += 1
    return count, rows[0][1] if rows and not rows[0][0] else ""


def failures_condition(status) -> Condition | None:
    needed = max(settings.FAILURES_BEFORE_UNKNOWN, 1)
    count, error = consecutive_failures(status.key, needed)
    if count >= needed:
        message = f"The last {count} checks failed: {error}"
        return Condition(status.key, Alert.FAILURES, Level.UNKNOWN, message, count)
    if count == 0:
        return Condition(status.key, Alert.FAILURES, Level.OK, "Checks succeed again")
    return None  # a failure or two: wait before calling the monitor blind


def stale_condition(status, now: datetime) -> Condition | None:
    """UNKNOWN when no check of the key succeeded within two check intervals."""
    limit = timedelta(minutes=2 * settings.CHECK_INTERVAL_MINUTES)
    logs = CreditLog.objects.for_key(status.key)
    last_ok = logs.successful().order_by("-timestamp").values_list("timestamp", flat=True).first()
    since = last_ok or logs.order_by("timestamp").values_list("timestamp", flat=True).first()
    if since is None or now - since <= limit:
        return Condition(status.key, Alert.STALE, Level.OK, "A recent check succeeded")
    hours = (now - since).total_seconds() / 3600
    what = f"since {since:%Y-%m-%d %H:%M} UTC" if last_ok else "ever"
    return Condition(status.key, Alert.STALE, Level.UNKNOWN, f"No successful check {what} ({hours:.0f} h)", hours)


def key_conditions(status, now: datetime, open_alerts: dict) -> list[Condition]:
    key_id = status.key.pk if status.key is not None else None
    found = []
    if status.log.ok:
        found.append(balance_condition(status, open_alerts.get((key_id, Alert.BALANCE, ""))))
        found.append(forecast_condition(status, open_alerts.get((key_id, Alert.FORECAST, ""))))
        found.append(spike_condition(status, now))
    failures = failures_condition(status)
    found.append(failures)
    if failures is None or failures.level == Level.OK:
        # When the failures alert is up it already says the monitor is blind: one UNKNOWN, not two.
        found.append(stale_condition(status, now))
    return [c for c in found if c is not None]


def conditions_for(statuses, now: datetime) -> list[Condition]:
    open_alerts = {(a.key_id, a.condition, a.subject): a for a in Alert.objects.open()}
    conditions = []
    for status in statuses:
        conditions += key_conditions(status, now, open_alerts)
    if settings.OPENROUTER_MANAGEMENT_KEY:
        try:
            from .account import account_conditions

            conditions += account_conditions(statuses, now)
        except Exception:  # one broken account-wide evaluator must not stop the balance alerts
            logger.exception("Account-wide alert evaluation failed")
    else:
        # Keys given directly still report expiry and, for a cap that resets, its use through GET /key
        # (a cap that never resets is the balance itself: the balance alert already covers it).
        from .account import expiry_condition, key_limit_condition

        for status in statuses:
            if status.key is not None:
                if status.log.ok and status.log.limit_reset:
                    conditions.append(key_limit_condition(status.key, status.log))
                conditions.append(expiry_condition(status.key, now))
    return conditions


# --- the lifecycle --------------------------------------------------------------------------


def evaluate(statuses, now: datetime | None = None) -> list[AlertEvent]:
    """Evaluate every condition for the checked keys and sync Alert rows. Returns the new events."""
    now = now or timezone.now()
    conditions = conditions_for(statuses, now)
    Lease.objects.get_or_create(name=SYNC_LOCK, defaults={"expires_at": now})
    events: list[AlertEvent] = []
    with transaction.atomic():
        Lease.objects.select_for_update().get(name=SYNC_LOCK)
        touched = set()
        for condition in conditions:
            event = sync(condition, now)
            if event is not None:
                events.append(event)
                touched.add(event.alert_id)
        events += remind(now, exclude=touched)
    return events


def _open_alert(condition: Condition) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .open()
        .filter(key=condition.key, condition=condition.condition, subject=condition.subject)
        .first()
    )


def sync(condition: Condition, now: datetime) -> AlertEvent | None:
    """Apply one condition to its open alert (if any); returns the transition's event, if one happened."""
    alert = _open_alert(condition)
    if alert is None:
        if condition.level == Level.OK:
            return None
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    key=condition.key,
                    condition=condition.condition,
                    subject=condition.subject,
                    level=condition.level,
                    message=condition.message,
                    value=condition.value,
                    opened_at=now,
                    updated_at=now,
                )
        except IntegrityError:  # another run opened it a moment ago: treat it as existing
            alert = _open_alert(condition)
            if alert is None:
                raise
        else:
            return record(alert, AlertEvent.OPENED, condition.message, now)
    previous = alert.level
    alert.message, alert.value, alert.updated_at = condition.message, condition.value, now
    if condition.level == Level.OK:
        alert.resolved_at = now
        alert.save()
        return record(alert, AlertEvent.RESOLVED, condition.message, now, level=Level.OK, previous=previous)
    if condition.level == previous:
        alert.save(update_fields=["message", "value", "updated_at"])
        return None
    alert.level = condition.level
    alert.save()
    up = SEVERITY[Level(condition.level)] > SEVERITY[Level(previous)]
    kind = AlertEvent.ESCALATED if up else AlertEvent.DEESCALATED
    return record(alert, kind, condition.message, now, previous=previous)


def remind(now: datetime, exclude: set | frozenset = frozenset()) -> list[AlertEvent]:
    """A reminder for each open, unsilenced alert not notified for REMIND_INTERVAL_HOURS."""
    events = []
    # No select_related: PostgreSQL refuses FOR UPDATE on the nullable side of an outer join.
    for alert in Alert.objects.select_for_update().open().exclude(pk__in=exclude):
        if alert.reminder_due(now):
            events.append(record(alert, AlertEvent.REMINDER, alert.message, now))
    return events


def record(
    alert: Alert, kind: str, message: str, now: datetime, level: int | None = None, previous: int | None = None
) -> AlertEvent:
    """Write the event, log it, and queue its notifications in the caller's transaction."""
    from . import notify

    event = AlertEvent.objects.create(
        alert=alert,
        created=now,
        kind=kind,
        level=alert.level if level is None else level,
        previous_level=previous,
        message=message,
    )
    log_level = logging.INFO if event.level == Level.OK else logging.WARNING
    logger.log(
        log_level,
        "Alert %s: %s %s for %s: %s",
        kind,
        Level(event.level).label,
        alert.get_condition_display(),
        alert.key.display_name if alert.key else "the account",
        message,
    )
    if notify.needs_notification(event):
        if kind != AlertEvent.RESOLVED:
            alert.last_notified_at = now
            alert.save(update_fields=["last_notified_at"])
        notify.queue(event)
    return event


# --- people acting on alerts ----------------------------------------------------------------

# Snooze lengths offered on the Alerts page: (hours, label).
SNOOZE_CHOICES = [(1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days"), (168, "1 week")]


def _username(user) -> str:
    if hasattr(user, "get_username"):
        return user.get_username()
    return str(user or "")


def acknowledge(alert: Alert, user, now: datetime | None = None) -> AlertEvent | None:
    """Silence an open alert until it resolves; None when it already was acknowledged."""
    now = now or timezone.now()
    who = _username(user)
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if not locked.is_open:
            raise ValueError("This alert is already resolved.")
        if locked.acknowledged_at is not None:
            return None
        locked.acknowledged_at, locked.acknowledged_by = now, who
        locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
        event = AlertEvent.objects.create(
            alert=locked,
            created=now,
            kind=AlertEvent.ACKNOWLEDGED,
            level=locked.level,
            message=f"Acknowledged by {who or 'someone'}: no notifications until it resolves",
            user=who,
        )
    alert.acknowledged_at, alert.acknowledged_by = now, who
    logger.info("Alert acknowledged by %s: %s", who, locked)
    return event


def snooze(alert: Alert, until: datetime, user, now: datetime | None = None) -> AlertEvent:
    """Silence an open alert until a time; reminders resume after it if the alert is still open."""
    now = now or timezone.now()
    if until <= now:
        raise ValueError("Snooze until a time in the future.")
    who = _username(user)
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if not locked.is_open:
            raise ValueError("This alert is already resolved.")
        locked.snoozed_until, locked.snoozed_by = until, who
        locked.save(update_fields=["snoozed_until", "snoozed_by"])
        event = AlertEvent.objects.create(
            alert=locked,
            created=now,
            kind=AlertEvent.SNOOZED,
            level=locked.level,
            message=f"Snoozed by {who or 'someone'} until {until:%Y-%m-%d %H:%M} UTC",
            user=who,
        )
    alert.snoozed_until, alert.snoozed_by = until, who
    logger.info("Alert snoozed by %s until %s: %s", who, until.isoformat(), locked)
    return event
