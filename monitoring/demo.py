"""A month of realistic demo history that ends where the simulator's `steady` scenario stands now."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import ApiKey, CreditLog, DailyFigure, HourlyFigure
from .openrouter import key_hash
from .simulator import DEV_KEY, PROD_KEY

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "creditmon-demo"

# (token, name, usage now, spend per day, limit now, limit before the top-up, primary)
DEMO_KEYS = [
    (PROD_KEY, "Production Key", 54.77, 3.2, 100.0, 50.0, True),
    (DEV_KEY, "Dev Key", 3.10, 0.4, 20.0, 20.0, False),
]
TOPUP_DAYS_AGO = 12
ACCOUNT_CREDITS_NOW, ACCOUNT_CREDITS_BEFORE, ACCOUNT_USAGE_NOW = 250.0, 150.0, 180.5


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


@transaction.atomic
def seed(now: datetime, days: int = 30, step: timedelta = timedelta(hours=6)) -> int:
    """Create the demo keys, a month of checks and the demo login. Returns rows written."""
    rows = []
    topup_at = now - timedelta(days=TOPUP_DAYS_AGO)
    account_per_day = sum(k[3] for k in DEMO_KEYS) * 1.4  # other keys of the account spend too
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
        for when, usage in usage_series(now, usage_now, per_day, days, step):
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
    user_model = get_user_model()
    if not user_model.objects.filter(username=DEMO_USERNAME).exists():
        user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)
    return len(rows)
