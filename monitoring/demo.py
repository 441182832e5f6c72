"""A month of realistic demo history that ends where the simulator's `steady` scenario stands now: a top-up,
a past alert with its history and deliveries, and today's spend spike, open, to acknowledge, snooze and undo."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from . import alerts, status
from .models import Alert, AlertEvent, ApiKey, CreditLog, DailyFigure, Delivery, HourlyFigure, Level
from .openrouter import key_hash
from .simulator import DEV_KEY, PROD_KEY

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "creditmon-demo"

# (token, name, usage now, spend per day, limit now, limit before the top-up, primary). The usage holds a month
# at the simulator's own rates (3.20 and 0.40 $/day), so the log, the stored activity and the live checks agree;
# the runapp command sets the simulator's keys to these figures.
DEMO_KEYS = [
    (PROD_KEY, "Production Key", 154.77, 3.2, 200.0, 115.0, True),
    (DEV_KEY, "Dev Key", 13.10, 0.4, 30.0, 30.0, False),
]
TOPUP_DAYS_AGO = 12
ACCOUNT_CREDITS_NOW, ACCOUNT_CREDITS_BEFORE, ACCOUNT_USAGE_NOW = 250.0, 150.0, 180.5
SPIKE_USD = 10.0  # the primary key's extra spend in the last hours of today: a spend spike alert stays open
SPIKE_HOURS = 3
# Where the demo's notifications "went" (invented: the demo sends nothing anywhere).
DEMO_CHANNELS = ["json://hooks.example.com/creditmon", "mailto://ops@example.org"]


def spend_weight(when: datetime) -> float:
    """Busier on weekdays and in working hours, so the charts look like a real service."""
    weekday = 1.2 if when.weekday() < 5 else 0.5
    hour = 1.0 + 0.5 * math.sin((when.hour - 9) / 24 * 2 * math.pi)
    return weekday * hour


def usage_series(
    now: datetime, usage_now: float, per_day: float, days: int, step: timedelta
) -> list[tuple[datetime, float]]:
    """Cumulative usage going back `days`, spending `per_day` on average with a weekly rhythm."""
    count = int(timedelta(days=days) / step)
    times = [now - step * (count - i) for i in range(count + 1)]
    weights = [spend_weight(t) for t in times[1:]]
    scale = per_day * days / sum(weights)
    usage = usage_now - per_day * days
    series = [(times[0], max(usage, 0.0))]
    for when, weight in zip(times[1:], weights, strict=True):
        usage += weight * scale
        series.append((when, max(usage, 0.0)))
    return series


def with_spike(series: list[tuple[datetime, float]], now: datetime, amount: float) -> list[tuple[datetime, float]]:
    """The same series ending at the same usage, `amount` of it spent since local midnight (at most SPIKE_HOURS)."""
    midnight = now.astimezone(ZoneInfo(settings.CREDITMON_TIME_ZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(midnight, now - timedelta(hours=SPIKE_HOURS))
    span = max((now - start).total_seconds(), 1.0)
    return [
        (when, max(usage - amount + amount * min(max((when - start).total_seconds() / span, 0.0), 1.0), 0.0))
        for when, usage in series
    ]


def deliver(event: AlertEvent, when: datetime) -> None:
    """The deliveries the demo pretends were made for an event, so the Alerts page shows what they look like."""
    Delivery.objects.bulk_create(
        Delivery(event=event, channel=c, channel_id=c, status=Delivery.SENT, attempts=1, duration_ms=240, created=when,
                 last_attempt_at=when)
        for c in DEMO_CHANNELS
    )  # fmt: skip


def seed_alerts(now: datetime, primary: ApiKey) -> None:
    """A past alert with its history (the balance low before the top-up) and the real alert rules on today."""
    topup_at = now - timedelta(days=TOPUP_DAYS_AGO)
    logs = CreditLog.objects.filter(key=primary, timestamp__lt=topup_at)
    low = logs.filter(remaining__lt=settings.OPENROUTER_CREDIT_THRESHOLD).order_by("timestamp").first()
    after = CreditLog.objects.filter(key=primary, timestamp__gte=topup_at).order_by("timestamp").first()
    if low is not None and after is not None:
        opened, resolved = low.timestamp, after.timestamp
        level, warned = status.balance_level(low.remaining)
        past = Alert.objects.create(
            key=primary, condition=Alert.BALANCE, level=level, opened_at=opened, updated_at=resolved,
            resolved_at=resolved, last_notified_at=opened, value=after.remaining,
            message=f"{status.balance_level(after.remaining)[1]}: ${after.remaining:.2f} after a top-up",
        )  # fmt: skip
        history = [
            (opened, AlertEvent.OPENED, level, None, warned),
            (resolved, AlertEvent.RESOLVED, Level.OK, level, past.message),
        ]
        for when, kind, event_level, previous, message in history:
            event = AlertEvent.objects.create(
                alert=past, created=when, kind=kind, level=event_level, previous_level=previous, message=message
            )
            deliver(event, when)
    # Today: the alert rules themselves, on the seeded checks (the spend spike opens).
    for event in alerts.evaluate(status.build(now), now):
        Delivery.objects.filter(event=event).delete()  # queued for any real channel: the demo sends nothing
        deliver(event, now)


@transaction.atomic
def seed(now: datetime, days: int = 30, step: timedelta = timedelta(hours=6)) -> int:
    """Create the demo keys, a month of checks and the demo login. Returns rows written."""
    rows = []
    topup_at = now - timedelta(days=TOPUP_DAYS_AGO)
    account_per_day = sum(k[3] for k in DEMO_KEYS)  # the account's spend is its keys' (as its activity says)
    for token, name, usage_now, per_day, limit_now, limit_before, primary in DEMO_KEYS:
        key, _ = ApiKey.objects.update_or_create(
            hash=key_hash(token),
            defaults={
                "name": name,
                "label": f"sk-or-v1-sim...{token[-3:]}",
                "is_primary": primary,
                "credit_limit": limit_now,
                "first_seen": now - timedelta(days=days),
            },
        )
        spike = SPIKE_USD if primary else 0.0
        # The simulator's usage now is all there is: a month at the full rate would start below zero.
        history_per_day = min(per_day, (usage_now - spike) / days * 0.95)
        series = usage_series(now, usage_now - spike, history_per_day, days, step)
        if spike:
            series = with_spike([(when, usage + spike) for when, usage in series], now, spike)
        for when, usage in series:
            limit = limit_now if when >= topup_at else limit_before
            credits = ACCOUNT_CREDITS_NOW if when >= topup_at else ACCOUNT_CREDITS_BEFORE
            account_usage = ACCOUNT_USAGE_NOW - account_per_day * (now - when).total_seconds() / 86400
            balance = credits - account_usage
            key_left = max(limit - usage, 0.0)
            rows.append(
                CreditLog(
                    timestamp=when,
                    key=key,
                    ok=True,
                    label=key.label,
                    usage=round(usage, 6),
                    credit_limit=limit,
                    limit_remaining=round(key_left, 6),
                    remaining=round(min(key_left, balance), 6),
                    is_free_tier=False,
                    is_management_key=False,
                    account_credits=credits,
                    account_usage=round(account_usage, 6),
                    account_balance=round(balance, 6),
                    raw_response="{}",
                    duration_ms=180,
                )
            )
    CreditLog.objects.bulk_create(rows, batch_size=500)
    CreditLog.objects.recompute_spend_totals()  # what the monitor derives as it writes: burn-rate totals
    DailyFigure.objects.rebuild()  # and the pages' daily and hourly rows, which fold by id
    HourlyFigure.objects.rebuild()
    seed_alerts(now, ApiKey.objects.get(hash=key_hash(PROD_KEY)))
    user_model = get_user_model()
    if not user_model.objects.filter(username=DEMO_USERNAME).exists():
        user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
    return len(rows)
