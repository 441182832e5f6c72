"""What drove a rise in spend: the keys and models whose spend rose, with amounts and shares of the rise.

Keys come from their readings (the caller gives each key's rise); models from stored activity (GET
/activity, management key), whose latest day is compared with the week before it. Today's split by
model is published by OpenRouter only after the UTC day ends: until then the latest stored day is named.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Sum

from . import forecast
from .models import Activity, ApiKey

WEEK = 7  # days of stored activity a model's latest day is compared with
SHOWN = 3


def usd(value: float) -> str:
    return f"${value:,.2f}"


def key_drivers(rises: list[tuple[str, float, str]]) -> str:
    """'keys: Production Key +$1.20 in 60 min (80% of the rise), ...' from (name, rise, period) tuples."""
    rising = sorted((r for r in rises if r[1] > 0), key=lambda r: r[1], reverse=True)
    total = sum(r[1] for r in rising)
    if not total:
        return ""
    parts = [f"{name} +{usd(rise)} {period} ({rise / total:.0%} of the rise)" for name, rise, period in rising[:SHOWN]]
    return "keys: " + ", ".join(parts)


def model_drivers(key: ApiKey | None) -> str:
    """Models whose spend rose on the latest stored day of activity (the key's own rows, else the account's)
    against their average over the week before; without a rise, the models that spent most that day."""
    rows = Activity.objects.filter(api_key_hash=key.hash) if key is not None else Activity.objects.none()
    if not rows.exists():
        rows = Activity.objects.account_wide()
    latest = rows.order_by("-date").values_list("date", flat=True).first()
    if latest is None:
        return "models: unknown (no stored activity: needs OPENROUTER_MANAGEMENT_KEY)"
    first = latest - timedelta(days=WEEK)
    spend: dict[str, dict[date, float]] = {}
    daily = rows.between(first, latest).values_list("model", "date").annotate(total=Sum("usage"))
    for model, day, total in daily.values_list("model", "date", "total"):
        spend.setdefault(model, {})[day] = total or 0.0
    rises = {}
    for model, days in spend.items():
        average = forecast.average_per_day(days, first, latest - timedelta(days=1)) or 0.0
        rises[model] = days.get(latest, 0.0) - average
    rising = sorted(((m, r) for m, r in rises.items() if r > 0.005), key=lambda item: item[1], reverse=True)
    # Today's split by model is not published yet: said first, so yesterday's models are not read as today's rise.
    unknown = "models today: unknown until OpenRouter publishes the day (after midnight UTC)"
    if rising:
        total = sum(r for _, r in rising)
        parts = [f"{m} +{usd(r)}/day ({r / total:.0%} of the rise)" for m, r in rising[:SHOWN]]
        return f"{unknown}; on {latest} against the week before: " + ", ".join(parts)
    day_total = sum(days.get(latest, 0.0) for days in spend.values()) or 1.0
    top = sorted(((m, days.get(latest, 0.0)) for m, days in spend.items()), key=lambda item: item[1], reverse=True)
    parts = [f"{m} {usd(s)} ({s / day_total:.0%})" for m, s in top[:SHOWN] if s > 0]
    return f"{unknown}; none rose on {latest}, biggest then: " + ", ".join(parts)
