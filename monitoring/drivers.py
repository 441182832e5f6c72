"""What drove a rise in spend: the keys and models whose spend rose, with amounts and shares of the rise.

Keys come from their readings (the caller gives each key's rise); models from stored activity (GET
/activity, management key), whose latest day is compared with the week before it. Today's split by
model is published by OpenRouter only after the UTC day ends: until then the latest stored day is named.

`explain_spike` answers "why" for the spike and runaway alerts, their notifications, their agent tasks and
the MCP tool: the key's rise today (its readings), and for each model which factor of spend moved on the
latest completed day (spike_factors: requests x tokens per request x price), each statement naming its data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import Coalesce

from . import forecast, spike_factors, status
from .models import Activity, ApiKey, CreditLog

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


# --- why: which factor moved --------------------------------------------------------------------

READINGS = "the key's readings today (GET /key checks)"
ACTIVITY = "stored activity (GET /activity), completed UTC days"
TODAY_UNKNOWN = (
    "today's split by model and its factors arrive with tomorrow's activity (OpenRouter publishes a UTC day "
    "after it ends)"
)


def key_rise(key: ApiKey, now: datetime) -> dict | None:
    """The key's spend today against its average per day before today, and since when it rose (readings)."""
    window = settings.BURN_RATE_WINDOW_DAYS
    tz = status.reporting_zone()
    samples = CreditLog.objects.usage_samples(key, now - timedelta(days=window + 1))
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    average = forecast.burn_rate_per_day([s for s in samples if s[0] <= midnight], midnight, window)
    today = forecast.spend_today(samples, now, tz)
    if today is None:
        return None
    since = None
    if average:
        since = spike_factors.rise_start([s for s in samples if s[0] >= midnight], average, settings.SPIKE_FACTOR)
    ratio = today / average if average else None
    text = f"{key.display_name} spent {usd(today)} today"
    if average:
        text += f", {ratio:.1f}x its {usd(average)}/day average"
    if since is not None:
        text += f", rising since {since.astimezone(tz):%H:%M %Z}"
    return {
        "spend_today": round(today, 4),
        "average_per_day": round(average, 4) if average is not None else None,
        "ratio": round(ratio, 2) if ratio is not None else None,
        "since": since.isoformat() if since is not None else None,
        "statement": text,
        "source": READINGS,
    }


def model_days(key: ApiKey | None, model: str | None, first: date, last: date) -> tuple[str, dict]:
    """Per model and day: Usage from stored activity (the key's own rows when stored, else the account's)."""
    rows = Activity.objects.filter(api_key_hash=key.hash) if key is not None else Activity.objects.none()
    scope = f"via key {key.display_name}" if key is not None else "on the account"
    if not rows.exists():
        rows = Activity.objects.account_wide()
        scope = "on the account"
    if model:
        rows = rows.filter(model=model)
    found: dict[str, dict[date, spike_factors.Usage]] = {}
    daily = rows.between(first, last).order_by().values("model", "date")
    daily = daily.annotate(
        calls=Sum("requests"),
        prompt=Sum("prompt_tokens"),
        completion=Sum("completion_tokens"),
        reasoning=Coalesce(Sum("reasoning_tokens"), 0),
        spend=Sum("usage"),
    )
    for row in daily:
        tokens = (row["prompt"] or 0) + (row["completion"] or 0) + (row["reasoning"] or 0)
        found.setdefault(row["model"], {})[row["date"]] = spike_factors.Usage(
            row["calls"] or 0, tokens, row["spend"] or 0.0
        )
    return scope, found


def model_factors(key: ApiKey | None, now: datetime, model: str | None = None) -> list[dict]:
    """For each model that spent on the latest completed stored day: its factors against the week before."""
    yesterday = now.astimezone(UTC).date() - timedelta(days=1)
    rows = Activity.objects.filter(date__lte=yesterday)
    if key is not None and Activity.objects.filter(api_key_hash=key.hash).exists():
        rows = rows.filter(api_key_hash=key.hash)
    else:
        rows = rows.account_wide()
    latest = rows.order_by("-date").values_list("date", flat=True).first()
    if latest is None:
        return []
    first = latest - timedelta(days=WEEK)
    scope, by_model = model_days(key, model, first, latest)
    found = []
    for name, days in by_model.items():
        last = days.get(latest)
        if last is None or last.spend <= 0:
            continue
        before = [u for day, u in days.items() if day < latest]
        started = min(days)  # a model first used mid-week is compared with the days it was used
        span = (latest - max(first, started)).days
        base = spike_factors.total(before, span)
        found_ratios = spike_factors.ratios(last, base)
        noise = spike_factors.spread(before, base)
        changed = spike_factors.moved(found_ratios, noise=noise)
        when = f"on {latest} against the {span} days before"
        text = spike_factors.statement(name, found_ratios, scope, when, changed)
        found.append(
            {
                "model": name,
                "day": latest.isoformat(),
                "spend": round(last.spend, 4),
                "baseline_spend_per_day": round(base.spend_per_day, 4) if span else None,
                "rise": round(last.spend - base.spend_per_day, 4),
                "requests": last.requests,
                "baseline_requests_per_day": round(base.requests_per_day, 2) if span else None,
                "tokens_per_request": round(last.tokens_per_request or 0, 1),
                "baseline_tokens_per_request": round(base.tokens_per_request or 0, 1) if span else None,
                "price_per_million_tokens": round(last.price_per_million or 0, 4),
                "baseline_price_per_million_tokens": round(base.price_per_million or 0, 4) if span else None,
                "ratios": {f: round(r, 3) if r is not None else None for f, r in found_ratios.items()},
                "moved": changed,
                "noise": {f: round(n, 3) for f, n in noise.items()},
                "statement": text,
                "source": ACTIVITY,
            }
        )
    found.sort(key=lambda f: f["rise"], reverse=True)
    return found


def explain_spike(key: ApiKey | None, now: datetime, model: str | None = None) -> dict:
    """Why spend rose: the key's rise today (readings) and the factor that moved on each model whose spend
    rose on the latest completed day (activity), with what cannot be known yet. `text` says it in one go."""
    rise = key_rise(key, now) if key is not None else None
    factors = model_factors(key, now, model)
    shown = [f for f in factors if (f["moved"] and f["rise"] > 0.005) or model][:SHOWN]
    unknown = []
    if not shown and factors:
        unknown.append(f"which model: none moved its requests, tokens per request or price beyond its usual range "
                       f"on {factors[0]['day']}")  # fmt: skip
    elif not shown:
        unknown.append("which model: no stored activity (needs OPENROUTER_MANAGEMENT_KEY)")
    today = now.astimezone(UTC).date()
    if not shown or date.fromisoformat(shown[0]["day"]) < today:
        unknown.append(TODAY_UNKNOWN)
    if key is None:
        unknown.append("which key: an account-wide alert (the per-key split is in the key's own activity rows)")
    parts = []
    if rise is not None:
        parts.append(f"{rise['statement']} (from {rise['source']}).")
    for found in shown:
        parts.append(f"{found['statement']} (from {found['source']}).")
    parts += [f"Not known yet: {u}." for u in unknown]
    return {
        "key": key.display_name if key is not None else None,
        "as_of": now.isoformat(),
        "key_rise": rise,
        "factors": shown,
        "unknown": unknown,
        "text": " ".join(parts),
    }
