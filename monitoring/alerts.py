"""Alert conditions and the alert lifecycle (open, escalate, de-escalate, resolve).

`evaluate()` turns the checks of one run into `Condition`s (one per key and condition), then syncs
them with the `Alert` rows: every transition is an `AlertEvent`, and events that should reach a
person get their `Delivery` rows in the same transaction (sent afterwards by `notify`).
A condition that was not evaluated this run (for example the balance when the check failed) is
simply absent, so its open alert stays as it was.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from . import advisor, agent_tasks, drivers, forecast, notify, status
from .models import Activity, Alert, AlertEvent, ApiKey, CreditLog, Lease, Level, severity
from .status import KeyStatus, Status, money

logger = logging.getLogger("monitoring")

# A row locked for the length of one sync, so two overlapping runs apply transitions one after the other.
SYNC_LOCK = "alert-sync"
SAMPLES_BATCH = 500  # keys whose spike readings are read in one query
TOPUP_CHECKS = 3  # consecutive checks below the threshold without a purchase before TOPUP_MISSED


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
    return a if severity(a) >= severity(b) else b


def milder(a: int, b: int) -> int:
    return a if severity(a) <= severity(b) else b


# --- conditions per key: the status's own, with hysteresis ------------------------------------


def balance_condition(key_status: KeyStatus, open_alert: Alert | None) -> Condition | None:
    """Warning below the threshold, critical at or below the minimum; sticky by the hysteresis margin."""
    remaining = key_status.remaining
    if remaining is None:
        return None  # unknown balance: nothing to say about it (the health page explains why)
    level, message = raw, _ = status.balance_level(remaining)
    if open_alert is not None and severity(open_alert.level) > severity(raw):
        # A balance hovering at a line must clear it by the margin before the alert eases.
        margin = settings.ALERT_HYSTERESIS * settings.OPENROUTER_CREDIT_THRESHOLD
        level = worse(raw, milder(open_alert.level, status.balance_level(remaining - margin)[0]))
        if level != raw:
            line = settings.OPENROUTER_CREDIT_THRESHOLD if level == Level.WARNING else settings.OPENROUTER_MIN_BALANCE
            message = (
                f"Credits {money(remaining)} remaining: not yet clear of the {money(line)} line "
                f"(the alert eases above {money(line + margin)})"
            )
    return Condition(key_status.key, Alert.BALANCE, level, message, remaining)


def forecast_condition(key_status: KeyStatus, open_alert: Alert | None) -> Condition | None:
    """Days left below the horizons; sticky by the hysteresis margin (a share of the warning horizon)."""
    found = key_status.conditions.get("forecast")
    if found is None or not key_status.burn.known and key_status.money_binding != "account":
        return None  # not enough history to forecast, or already out (the balance alert tells that story)
    level, message = raw, _ = found
    days = key_status.money_days_left  # the key's cap or the account; a budget layer has its own condition
    if open_alert is not None and days is not None and severity(open_alert.level) > severity(raw):
        margin = settings.ALERT_HYSTERESIS * settings.FORECAST_WARNING_DAYS
        level = worse(raw, milder(open_alert.level, status.forecast_level(days - margin)))
    return Condition(key_status.key, Alert.FORECAST, level, message, days)


def budget_layer_condition(key_status: KeyStatus, open_alert: Alert | None) -> Condition | None:
    """The worst budget layer (guardrail, member or workspace budget): spent, forecast to block, share spent."""
    found = key_status.conditions.get("budget_layer")
    if found is None:
        gone = Condition(key_status.key, Alert.BUDGET_LAYER, Level.OK, "The key has no budget layer any more")
        return None if open_alert is None else gone
    layer = key_status.binding_limit or next((x for x in key_status.limits if x.level == found[0]), None)
    return Condition(key_status.key, Alert.BUDGET_LAYER, found[0], found[1], layer.days_left if layer else None)


def free_quota_condition(key_status: KeyStatus, open_alert: Alert | None) -> Condition | None:
    """The free-model quota nearly or fully used by a key that uses :free models; resolves once it is not."""
    found = key_status.conditions.get("free_quota")
    if found is None:
        fine = Condition(key_status.key, Alert.FREE_QUOTA, Level.OK, "The free-model quota has requests left")
        return None if open_alert is None else fine
    log = key_status.success
    return Condition(key_status.key, Alert.FREE_QUOTA, found[0], found[1], log.free_remaining if log else None)


def spike_window_start(now: datetime) -> datetime:
    """The readings a spike is judged on: the burn-rate window before today, and today."""
    return now - timedelta(days=settings.BURN_RATE_WINDOW_DAYS + 1)


def spike_condition(key_status: KeyStatus, now: datetime, samples: list | None = None) -> Condition | None:
    """Today's spend far above the average of the days before today. `samples`: the key's readings since
    spike_window_start(now), when the caller read many keys' at once."""
    window = settings.BURN_RATE_WINDOW_DAYS
    tz = status.reporting_zone()
    if samples is None:
        samples = CreditLog.objects.usage_samples(key_status.key, spike_window_start(now))
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    before = [s for s in samples if s[0] <= midnight]
    average = forecast.burn_rate_per_day(before, midnight, window)
    if average is None:
        return None  # no history before today to compare with
    # The baseline named with its window and source: the card's burn rate is another average (it includes today).
    inside = [when for when, _ in before if when >= midnight - timedelta(days=window)]
    span = (max(inside) - min(inside)).total_seconds() / 86400
    days = f"{window:g} days" if span >= status.FULL_WINDOW_SHARE * window else status.span_text(span)
    baseline = f"{money(average)}/day average over the {days} before today (logged checks)"
    today = forecast.spend_today(samples, now, tz)
    if forecast.is_spike(today, average, settings.SPIKE_FACTOR, settings.SPIKE_MIN_USD):
        message = f"Spent {money(today)} today, over {settings.SPIKE_FACTOR:g}x the {baseline}"
        rise = [(key_status.name, today - average * (now - midnight).total_seconds() / 86400, "today")]
        message += (
            f". Behind it: {drivers.key_drivers(rise) or 'keys: unknown'}; {drivers.model_drivers(key_status.key)}"
            f". Why: {drivers.explain_spike(key_status.key, now)['text']}"
        )
        return Condition(key_status.key, Alert.SPIKE, Level.WARNING, message, today)
    message = f"Spent {money(today)} today (the {baseline})"
    return Condition(key_status.key, Alert.SPIKE, Level.OK, message)


def failures_condition(key_status: KeyStatus) -> Condition | None:
    """UNKNOWN after FAILURES_BEFORE_UNKNOWN failed checks in a row (401/402 are CRITICAL at once)."""
    log = key_status.log
    if log is not None and log.ok:
        return Condition(key_status.key, Alert.FAILURES, Level.OK, "Checks succeed again")
    level, message = key_status.conditions.get("check", (Level.UNKNOWN, ""))
    if level == Level.CRITICAL:
        return Condition(key_status.key, Alert.FAILURES, level, message, key_status.failures)
    if key_status.failures >= max(settings.FAILURES_BEFORE_UNKNOWN, 1):
        return Condition(key_status.key, Alert.FAILURES, Level.UNKNOWN, message, key_status.failures)
    return None  # a failure or two: wait before calling the monitor blind


def stale_condition(key_status: KeyStatus) -> Condition:
    """UNKNOWN when no check of the key succeeded within two of the schedule's intervals."""
    level, message = key_status.conditions.get("stale", (Level.OK, "A recent check succeeded"))
    return Condition(key_status.key, Alert.STALE, level, message)


def key_conditions(key_status: KeyStatus, now: datetime, open_alerts: dict, samples: list | None = None) -> list:
    key_id = key_status.key.pk if key_status.key is not None else None
    found = []
    if key_status.log is not None and key_status.log.ok:
        found.append(balance_condition(key_status, open_alerts.get((key_id, Alert.BALANCE, ""))))
        found.append(forecast_condition(key_status, open_alerts.get((key_id, Alert.FORECAST, ""))))
        found.append(spike_condition(key_status, now, samples))
        found.append(budget_layer_condition(key_status, open_alerts.get((key_id, Alert.BUDGET_LAYER, ""))))
        found.append(free_quota_condition(key_status, open_alerts.get((key_id, Alert.FREE_QUOTA, ""))))
    failures = failures_condition(key_status)
    found.append(failures)
    if failures is None or failures.level == Level.OK:
        # When the failures alert is up it already says the monitor is blind: one UNKNOWN, not two.
        found.append(stale_condition(key_status))
    if key_status.key is not None:
        if (
            key_status.log is not None
            and key_status.log.ok
            and (settings.OPENROUTER_MANAGEMENT_KEY or key_status.log.limit_reset)
        ):
            # Without a management key, a cap that never resets is the balance itself: the balance alert covers it.
            found.append(key_limit_condition(key_status.key, key_status.log))
        found.append(expiry_condition(key_status.key, now))
    return [c for c in found if c is not None]


def conditions_for(found: Status, now: datetime) -> list[Condition]:
    open_alerts = {(a.key_id, a.condition, a.subject): a for a in Alert.objects.open()}
    conditions = []
    for first in range(0, len(found.keys), SAMPLES_BATCH):  # the spike readings of many keys in one query
        batch = found.keys[first : first + SAMPLES_BATCH]
        keys = [key_status.key for key_status in batch if key_status.key is not None]
        samples = CreditLog.objects.usage_samples_by_key(keys, spike_window_start(now))
        for key_status in batch:
            key_samples = samples.get(key_status.key.pk) if key_status.key is not None else None
            conditions += key_conditions(key_status, now, open_alerts, key_samples)
    if settings.OPENROUTER_MANAGEMENT_KEY:
        try:
            conditions += account_conditions(found, now)
        except Exception:  # one broken account-wide evaluator must not stop the balance alerts
            logger.exception("Account-wide alert evaluation failed")
    return conditions


# --- account-wide conditions ------------------------------------------------------------------


def account_conditions(found: Status, now: datetime) -> list[Condition]:
    """Monthly budget, model spikes, missed top-ups: every evaluated one, OK ones too, so open alerts resolve."""
    return [
        budget_condition(found, now),
        *model_spike_conditions(now),
        topup_missed_condition(),
        *model_expiry_conditions(now),
    ]


def key_limit_condition(key: ApiKey, log: CreditLog) -> Condition:
    limit, left = log.credit_limit, log.limit_remaining
    if not limit or limit <= 0 or left is None:
        return Condition(key, Alert.KEY_LIMIT, Level.OK, f"{key.display_name} has no limit of its own")
    used = (limit - left) / limit * 100
    period = status.RESET_PERIODS.get(log.limit_reset or "")
    window = f" this {period}" if period else ""
    message = f"{key.display_name} used {used:.0f}% of its {money(limit)} limit{window} ({money(left)} left)"
    if used >= settings.KEY_LIMIT_CRITICAL_PERCENT:
        return Condition(key, Alert.KEY_LIMIT, Level.CRITICAL, message, used)
    if used >= settings.KEY_LIMIT_WARNING_PERCENT:
        return Condition(key, Alert.KEY_LIMIT, Level.WARNING, message, used)
    return Condition(key, Alert.KEY_LIMIT, Level.OK, message, used)


def expiry_condition(key: ApiKey, now: datetime) -> Condition:
    if key.expires_at is None or key.disabled:
        return Condition(key, Alert.EXPIRY, Level.OK, f"{key.display_name} does not expire")
    days = (key.expires_at - now).total_seconds() / 86400
    when = key.expires_at.astimezone(status.reporting_zone()).strftime("%Y-%m-%d %H:%M %Z")
    if days <= 0:
        return Condition(key, Alert.EXPIRY, Level.CRITICAL, f"{key.display_name} expired on {when}", days)
    message = f"{key.display_name} expires on {when} (in {days:.1f} days)"
    if days <= 1:
        return Condition(key, Alert.EXPIRY, Level.CRITICAL, message, days)
    if days <= settings.KEY_EXPIRY_WARNING_DAYS:
        return Condition(key, Alert.EXPIRY, Level.WARNING, message, days)
    return Condition(key, Alert.EXPIRY, Level.OK, message, days)


def budget_condition(found: Status, now: datetime) -> Condition:
    budget = settings.MONTHLY_BUDGET
    if budget <= 0:
        return Condition(None, Alert.BUDGET, Level.OK, "No monthly budget set")
    spent = status.month_to_date_spend(now)
    projected = forecast.projected_month_spend(spent, found.account.burn.rate, now, status.reporting_zone())
    if spent > budget:
        message = f"Monthly budget exceeded: {money(spent)} spent of {money(budget)}"
        return Condition(None, Alert.BUDGET, Level.CRITICAL, message, spent)
    if projected is not None and projected > budget:
        message = (
            f"Projected month-end spend {money(projected)} exceeds the {money(budget)} budget ({money(spent)} so far)"
        )
        return Condition(None, Alert.BUDGET, Level.WARNING, message, projected)
    outlook = f", projected {money(projected)}" if projected is not None else ""
    return Condition(
        None, Alert.BUDGET, Level.OK, f"{money(spent)} of {money(budget)} spent this month{outlook}", projected
    )


def model_spike_conditions(now: datetime) -> list[Condition]:
    """Yesterday's (last completed UTC day) spend per model against its average over the 7 days before."""
    yesterday = now.astimezone(UTC).date() - timedelta(days=1)
    week_start = yesterday - timedelta(days=7)
    rows = (
        Activity.objects.filter(api_key_hash=status.ACCOUNT_HASH)
        .between(week_start, yesterday)
        .values_list("model", "date")
        .annotate(total=Sum("usage"))
        .values_list("model", "date", "total")
    )
    spend: dict[str, dict] = {}
    for model, day, total in rows:
        spend.setdefault(model, {})[day] = total
    open_subjects = Alert.objects.open().filter(condition=Alert.MODEL_SPIKE).values_list("subject", flat=True)
    conditions = []
    for model in sorted(set(spend) | set(open_subjects)):
        days = spend.get(model, {})
        last = days.get(yesterday, 0.0)
        average = forecast.average_per_day(days, week_start, yesterday - timedelta(days=1))
        if forecast.is_spike(last, average, settings.SPIKE_FACTOR, settings.SPIKE_MIN_USD):
            message = f"{model} spent {money(last)} on {yesterday}, {last / max(average, 0.01):.1f}x its 7-day average"
            message += f" of {money(average)}/day"
            conditions.append(Condition(None, Alert.MODEL_SPIKE, Level.WARNING, message, last, subject=model))
        else:
            message = f"{model} spent {money(last)} on {yesterday} (7-day average {money(average)}/day)"
            conditions.append(Condition(None, Alert.MODEL_SPIKE, Level.OK, message, last, subject=model))
    return conditions


def model_expiry_conditions(now: datetime) -> list[Condition]:
    """A used model whose expiration date falls within ADVISOR_EXPIRY_DAYS: WARNING with the date, the spend
    at risk and the best like-for-like candidates; OK again (so the alert resolves) once it is no longer so."""
    going = {entry["model"]: entry for entry in advisor.expiring(now)}
    open_subjects = Alert.objects.open().filter(condition=Alert.MODEL_EXPIRY).values_list("subject", flat=True)
    conditions = []
    for model in sorted(set(going) | set(open_subjects)):
        entry = going.get(model)
        if entry is None:
            message = f"{model} is no longer used or no longer retiring within {settings.ADVISOR_EXPIRY_DAYS} days"
            conditions.append(Condition(None, Alert.MODEL_EXPIRY, Level.OK, message, subject=model))
            continue
        best = ", ".join(f"{c['model']} ({money(c['cost'])})" for c in entry["candidates"][:3])
        message = (
            f"{model} may be removed after {entry['expiration_date']} (in {entry['expires_in_days']} days): "
            f"{money(entry['spend'])} spent on it in the last {settings.ADVISOR_WINDOW_DAYS} days is at risk; "
            + (f"like-for-like: {best}" if best else "no like-for-like candidate in the catalogue")
        )
        conditions.append(Condition(None, Alert.MODEL_EXPIRY, Level.WARNING, message, entry["spend"], subject=model))
    return conditions


def topup_missed_condition() -> Condition:
    if not settings.AUTO_TOPUP_EXPECTED:  # without auto top-up a falling balance is the balance alert's job
        return Condition(None, Alert.TOPUP_MISSED, Level.OK, "No auto top-up expected (AUTO_TOPUP_EXPECTED)")
    threshold = settings.OPENROUTER_CREDIT_THRESHOLD
    rows = (
        CreditLog.objects.successful()
        .exclude(account_balance=None)
        .exclude(account_credits=None)
        .values_list("timestamp", "account_balance", "account_credits")
        .order_by("-timestamp")
        .distinct()[:TOPUP_CHECKS]
    )
    readings = [(balance, credits) for _, balance, credits in reversed(rows)]
    if forecast.topup_missed(readings, threshold, TOPUP_CHECKS):
        message = (
            f"No top-up: the account balance fell to {money(readings[-1][0])} over {TOPUP_CHECKS} checks below "
            f"{money(threshold)} and no credits were added (is auto top-up on?)"
        )
        return Condition(None, Alert.TOPUP_MISSED, Level.WARNING, message, readings[-1][0])
    return Condition(None, Alert.TOPUP_MISSED, Level.OK, "Account credits topped up or balance not falling")


# --- the lifecycle --------------------------------------------------------------------------


def evaluate(found: Status, now: datetime | None = None, extra=()) -> list[AlertEvent]:
    """Evaluate every condition for the watched keys and sync Alert rows. Returns the new events.

    `extra`: conditions evaluated by the caller (the spend watch's runaway), synced first.
    """
    now = now or timezone.now()
    conditions = [*extra, *conditions_for(found, now)]
    Lease.objects.get_or_create(name=SYNC_LOCK, defaults={"expires_at": now})
    events: list[AlertEvent] = []
    with transaction.atomic():
        Lease.objects.select_for_update().get(name=SYNC_LOCK)
        touched = set()
        # Every open alert read once (ten thousand keys' conditions would be as many queries), under the lock.
        run = Evaluation(Alert.objects.select_for_update().open())
        for condition in conditions:
            event = sync(condition, now, run)
            if event is not None:
                events.append(event)
                touched.add(event.alert_id)
        events += remind(now, exclude=touched)
        agent_tasks.on_alert_events(run.transitions, now)
    return events


class Evaluation:
    """One evaluation under the sync lock: the open alerts, read once and kept current as its conditions apply
    (by identity, and by subject for what counts as news), and the transitions whose agent tasks are written
    together at its end, from one status of their keys."""

    def __init__(self, open_alerts):
        self.by_identity: dict[tuple, Alert] = {}
        self.by_subject: dict[int | None, dict[int, Alert]] = defaultdict(dict)
        self.transitions: list[tuple[Alert, str]] = []
        for alert in open_alerts:
            self.add(alert)

    @staticmethod
    def identity(alert: Alert) -> tuple:
        return alert.key_id, alert.condition, alert.subject

    def get(self, identity: tuple) -> Alert | None:
        return self.by_identity.get(identity)

    def add(self, alert: Alert) -> None:
        self.by_identity[self.identity(alert)] = alert
        self.by_subject[alert.key_id][alert.pk] = alert

    def remove(self, alert: Alert) -> None:
        self.by_identity.pop(self.identity(alert), None)
        self.by_subject[alert.key_id].pop(alert.pk, None)

    def others(self, alert: Alert) -> list[Alert]:
        """The other open alerts of the alert's subject (its key, or the account)."""
        return [other for pk, other in self.by_subject[alert.key_id].items() if pk != alert.pk]


def _open_alert(condition: Condition) -> Alert | None:
    return (
        Alert.objects.select_for_update()
        .open()
        .filter(key=condition.key, condition=condition.condition, subject=condition.subject)
        .first()
    )


def sync(condition: Condition, now: datetime, run: Evaluation | None = None) -> AlertEvent | None:
    """Apply one condition to its open alert (if any); returns the transition's event, if one happened.
    `run`: the evaluation this belongs to (its open alerts read once, kept current here), else the database."""
    identity = (condition.key.pk if condition.key is not None else None, condition.condition, condition.subject)
    alert = run.get(identity) if run is not None else _open_alert(condition)
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
            if run is not None:
                run.add(alert)
        else:
            if run is not None:
                run.add(alert)
            return record(alert, AlertEvent.OPENED, condition.message, now, run=run)
    previous = alert.level
    alert.message, alert.value, alert.updated_at = condition.message, condition.value, now
    if condition.level == Level.OK:
        alert.resolved_at = now
        alert.save()
        if run is not None:
            run.remove(alert)
        return record(alert, AlertEvent.RESOLVED, condition.message, now, level=Level.OK, previous=previous, run=run)
    if condition.level == previous:
        alert.save(update_fields=["message", "value", "updated_at"])
        return None
    alert.level = condition.level
    alert.save()
    up = severity(condition.level) > severity(previous)
    kind = AlertEvent.ESCALATED if up else AlertEvent.DEESCALATED
    return record(alert, kind, condition.message, now, previous=previous, run=run)


def resolve_for_key(key: ApiKey, reason: str, now: datetime) -> list[AlertEvent]:
    """Resolve a key's open alerts with the reason (a retired key: nothing is watched any more)."""
    events = []
    with transaction.atomic():
        for alert in Alert.objects.select_for_update().open().filter(key=key):
            previous = alert.level
            alert.message, alert.resolved_at, alert.updated_at = reason, now, now
            alert.save(update_fields=["message", "resolved_at", "updated_at"])
            events.append(record(alert, AlertEvent.RESOLVED, reason, now, level=Level.OK, previous=previous))
    return events


def remind(now: datetime, exclude: set | frozenset = frozenset()) -> list[AlertEvent]:
    """A reminder for each open, unsilenced alert not notified for REMIND_INTERVAL_HOURS."""
    events = []
    # No select_related: PostgreSQL refuses FOR UPDATE on the nullable side of an outer join.
    for alert in Alert.objects.select_for_update().open().exclude(pk__in=exclude):
        if alert.reminder_due(now):
            events.append(record(alert, AlertEvent.REMINDER, alert.message, now))
    return events


def record(
    alert: Alert,
    kind: str,
    message: str,
    now: datetime,
    level: int | None = None,
    previous: int | None = None,
    run: Evaluation | None = None,
) -> AlertEvent:
    """Write the event, log it, and queue its notifications in the caller's transaction. The alert's agent task
    follows now, or, within an evaluation (`run`), with the tasks of the whole evaluation."""
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
    if run is None:
        agent_tasks.on_alert_event(alert, kind, now)  # the alert's task opens, follows and closes with it
    else:
        run.transitions.append((alert, kind))
    if notify.needs_notification(event) and is_news(alert, kind, event.level, previous, run):
        if kind != AlertEvent.RESOLVED:
            alert.last_notified_at = now
            alert.save(update_fields=["last_notified_at"])
        notify.queue(event)
    elif kind in (AlertEvent.DEESCALATED, AlertEvent.RESOLVED) and alert.last_notified_at is not None:
        hand_over_told(alert, previous)
    return event


def is_news(alert: Alert, kind: str, level: int, previous: int | None, run: Evaluation | None = None) -> bool:
    """Whether a transition changes the level people were told for its subject (the key, or the account):
    opened or escalated above every other open alert of it, or eased or resolved from the top after being
    told. The rest is recorded and shown, not sent: one story, a few notifications. The other open alerts
    come from the evaluation (`run`) when there is one, else from the database."""
    if kind not in (AlertEvent.OPENED, AlertEvent.ESCALATED, AlertEvent.DEESCALATED, AlertEvent.RESOLVED):
        return True
    if run is not None:
        levels = [other.level for other in run.others(alert)]
    else:
        levels = Alert.objects.open().exclude(pk=alert.pk).filter(key_id=alert.key_id).values_list("level", flat=True)
    top = max((severity(value) for value in levels), default=0)
    if kind in (AlertEvent.OPENED, AlertEvent.ESCALATED):
        return severity(level) > top
    return alert.last_notified_at is not None and previous is not None and severity(previous) > top


def hand_over_told(alert: Alert, previous: int | None) -> None:
    """A told alert eased or resolved in silence because another open alert of its subject is as severe: unless
    a told one is, the most severe untold one now carries what people were told, so that its own resolution
    is sent (several alerts of one key resolving in the same run would otherwise end without a word)."""
    others = list(Alert.objects.open().exclude(pk=alert.pk).filter(key_id=alert.key_id))
    told = max((severity(o.level) for o in others if o.last_notified_at is not None), default=0)
    if previous is None or told >= severity(previous):
        return
    untold = [o for o in others if o.last_notified_at is None]
    heir = max(untold, key=lambda o: (severity(o.level), -o.pk), default=None)
    if heir is not None:
        heir.last_notified_at = alert.last_notified_at
        heir.save(update_fields=["last_notified_at"])


# --- people acting on alerts ----------------------------------------------------------------


def act_on(alert: Alert, kind: str, changes: dict, message: str, who: str, now: datetime, needed) -> AlertEvent | None:
    """A person's action on an open alert: the fields changed and the event written under the row's lock.
    None when `needed(alert)` says there is nothing to do (already acknowledged, not snoozed...)."""
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if not locked.is_open:
            raise ValueError("This alert is already resolved.")
        if not needed(locked):
            return None
        for name, value in changes.items():
            setattr(locked, name, value)
            setattr(alert, name, value)
        locked.save(update_fields=list(changes))
        event = AlertEvent.objects.create(
            alert=locked, created=now, kind=kind, level=locked.level, message=message, user=who
        )
    logger.info("Alert %s: %s (%s)", kind, locked, message)
    return event


def acknowledge(alert: Alert, user, now: datetime | None = None, note: str = "") -> AlertEvent | None:
    """Silence an open alert's reminders until it resolves; None when it already was acknowledged."""
    now, who = now or timezone.now(), notify.username(user)
    message = f"Acknowledged by {who or 'someone'}: no reminders until it resolves (a worse level notifies)"
    message += f". Note: {note}" if note else ""
    changes = {"acknowledged_at": now, "acknowledged_by": who}
    return act_on(alert, AlertEvent.ACKNOWLEDGED, changes, message, who, now, lambda a: a.acknowledged_at is None)


def snooze(alert: Alert, until: datetime, user, now: datetime | None = None, note: str = "") -> AlertEvent:
    """Silence an open alert until a time; reminders resume after it if the alert is still open."""
    now, who = now or timezone.now(), notify.username(user)
    if until <= now:
        raise ValueError("Snooze until a time in the future.")
    message = f"Snoozed by {who or 'someone'} until {until:%Y-%m-%d %H:%M} UTC"
    message += f". Note: {note}" if note else ""
    changes = {"snoozed_until": until, "snoozed_by": who}
    return act_on(alert, AlertEvent.SNOOZED, changes, message, who, now, lambda a: True)


def unacknowledge(alert: Alert, user, now: datetime | None = None) -> AlertEvent | None:
    """Withdraw an acknowledgement: reminders resume. None when it was not acknowledged."""
    now, who = now or timezone.now(), notify.username(user)
    message = f"Acknowledgement withdrawn by {who or 'someone'}: reminders resume"
    changes = {"acknowledged_at": None, "acknowledged_by": ""}
    return act_on(alert, AlertEvent.UNACKNOWLEDGED, changes, message, who, now, lambda a: a.acknowledged_at is not None)


def unsnooze(alert: Alert, user, now: datetime | None = None) -> AlertEvent | None:
    """End a snooze now: reminders resume. None when it was not snoozed."""
    now, who = now or timezone.now(), notify.username(user)
    message = f"Snooze ended by {who or 'someone'}: reminders resume"
    changes = {"snoozed_until": None, "snoozed_by": ""}
    return act_on(
        alert,
        AlertEvent.UNSNOOZED,
        changes,
        message,
        who,
        now,
        lambda a: bool(a.snoozed_until and a.snoozed_until > now),
    )
