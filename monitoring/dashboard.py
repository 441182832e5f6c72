"""What the dashboard pages show: a bounded number of aggregated queries in, plain values out.

Charts never read one row per check: the database groups the log into hour, day or week buckets
(a few hundred at most) and the pages draw those. The views stay thin: they parse the request,
call one function here and render.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Subquery, Sum

from . import account as account_sync
from . import forecast, monitor
from .models import (
    SEVERITY,
    Activity,
    Alert,
    ApiKey,
    CreditLog,
    DailyFigure,
    Level,
    rates_from_totals,
    window_annotations,
)

MAX_CARDS = 6  # keys shown as cards on System Health; more keys get a compact table
RANGES = {"7": 7, "30": 30, "90": 90, "all": None}
DEFAULT_RANGE = "30"
TOP_N = 5  # series in a stacked chart before the rest is summed as "Other"
WEEKLY_AFTER_DAYS = 200  # "all" switches to weekly buckets past this span, to stay a few hundred points
BURN_WINDOWS = (("24 h", 1), ("7 days", 7), ("30 days", 30))

LEVEL_CSS = {Level.OK: "ok", Level.WARNING: "warning", Level.CRITICAL: "critical", Level.UNKNOWN: "unknown"}


def reporting_tz() -> tzinfo:
    return ZoneInfo(settings.CREDITMON_TIME_ZONE)


def worst_level(levels) -> int:
    return max(levels, key=lambda level: SEVERITY[Level(level)], default=Level.OK)


def is_configured() -> bool:
    """A key to check is set (the tokens themselves never leave monitor.py)."""
    return bool(monitor.watched_keys() or settings.OPENROUTER_MANAGEMENT_KEY)


def error_hint(log: CreditLog) -> str:
    """What a person should do about a failed check, in words."""
    status = log.http_status
    if "not set" in log.error:
        return "Add OPENROUTER_API_KEY to .env (see .env.example) or the environment, restart, then press Check now."
    if status in (401, 403):
        return (
            f"The key is invalid or disabled: create a new one at {settings.OPENROUTER_KEYS_URL} "
            "and update OPENROUTER_API_KEY."
        )
    if status == 402:
        return f"The account has run out of credits: top up at {settings.OPENROUTER_TOPUP_URL}."
    if status == 429:
        return "OpenRouter is rate limiting requests: the next check tries again; act only if it persists."
    if status and status >= 500:
        return "OpenRouter is having trouble: retry in a few minutes. The failure is recorded."
    return (
        "The check could not reach OpenRouter or read its answer: check the network and "
        "OPENROUTER_BASE_URL, then press Check now."
    )


def hint_unless_said(log: CreditLog) -> str:
    """The hint, unless the error message already says the same (the client's messages often do)."""
    hint = error_hint(log)
    return "" if hint.split(":")[0].lower() in log.error.lower() else hint


def ms(when: datetime) -> int:
    """Milliseconds since the epoch, the unit the charts' time axes use."""
    return int(when.timestamp() * 1000)


# --- one key's state -------------------------------------------------------------------------


@dataclass
class KeyState:
    """One key as the pages show it: its newest check, its newest good figures and open alerts."""

    key: ApiKey
    log: CreditLog | None
    ok_log: CreditLog | None
    alerts: list[Alert] = field(default_factory=list)
    burn_rate: float | None = None
    samples: int = 0
    now: datetime | None = None

    @property
    def name(self) -> str:
        return self.key.display_name

    @property
    def checked_level(self) -> tuple[int, str]:
        """The level and reason from the newest check alone."""
        if self.log is None:
            return Level.UNKNOWN, "Not checked yet: press Check now or wait for the next scheduled check."
        if not self.log.ok:
            return Level.UNKNOWN, f"Last check failed: {self.log.error}"
        level, message = monitor.threshold_level(self.log.remaining)
        if self.log.remaining is None and self.log.account_note and "management" not in self.log.account_note:
            message = f"Balance unknown: {self.log.account_note}"
        return level, message

    @property
    def level(self) -> int:
        return worst_level([self.checked_level[0], *(a.level for a in self.alerts)])

    @property
    def reason(self) -> str:
        level, message = self.checked_level
        worst = max(self.alerts, key=lambda a: SEVERITY[Level(a.level)], default=None)
        if worst is not None and SEVERITY[Level(worst.level)] > SEVERITY[Level(level)]:
            return worst.message
        return message

    @property
    def level_name(self) -> str:
        return Level(self.level).label

    @property
    def level_css(self) -> str:
        return LEVEL_CSS[Level(self.level)]

    @property
    def remaining(self) -> float | None:
        return self.ok_log.remaining if self.ok_log else None

    @property
    def used_in_limit(self) -> float | None:
        """Spent against the key's cap in its current window (all-time when it never resets)."""
        log = self.ok_log
        if log is None or log.credit_limit is None:
            return None
        if log.limit_remaining is not None:
            return max(log.credit_limit - log.limit_remaining, 0.0)
        return log.usage

    @property
    def used_percent(self) -> float | None:
        log = self.ok_log
        if log is None or not log.credit_limit or self.used_in_limit is None:
            return None
        return min(self.used_in_limit / log.credit_limit * 100, 100.0)

    @property
    def days_left(self) -> float | None:
        return forecast.days_until_exhaustion(self.remaining, self.burn_rate)

    @property
    def exhaustion_date(self) -> datetime | None:
        return forecast.exhaustion_date(self.now, self.days_left) if self.now else None

    @property
    def burn_note(self) -> str:
        """Why the burn rate is unknown, in words."""
        if self.burn_rate is not None:
            return ""
        if self.samples < 2:
            return "unknown (need 2+ entries)"
        return "unknown (no spend measured yet)"


def hourly_samples(logs, since: datetime, value: str = "usage") -> list[tuple[datetime, float]]:
    """(time, cumulative value) per hour, the hour's last reading: at most 24 a day, one query."""
    rows = logs.since(since).filter(**{f"{value}__isnull": False}).buckets("hour", UTC, value=value)
    return [(row["last_at"], row["high"]) for row in rows]


def activity_rates(key: ApiKey, now: datetime, windows: list[float]) -> dict[float, float | None]:
    """Burn rates from the key's stored /activity (completed UTC days), as account.activity_burn_rate
    computes them, for several windows in one query: the rate is known before the log has two entries."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=max(1, int(max(windows))))
    totals = dict(
        Activity.objects.filter(api_key_hash=key.hash, date__gte=first, date__lt=today)
        .order_by()
        .values_list("date")
        .annotate(total=Sum("usage"))
        .values_list("date", "total")
    )
    if not totals:
        return dict.fromkeys(windows)
    rates = {}
    for days in windows:
        start = today - timedelta(days=max(1, int(days)))
        if key.created_at is not None:
            start = max(start, key.created_at.astimezone(UTC).date())  # a new key has fewer days of spend
        rates[days] = forecast.average_per_day(totals, start, today - timedelta(days=1))
    return rates


def with_activity(key: ApiKey, rates: dict[float, float | None], now: datetime) -> dict[float, float | None]:
    """Burn rates from the logged checks, falling back to stored activity where they are too few."""
    missing = [days for days, rate in rates.items() if rate is None]
    if missing:
        rates.update(activity_rates(key, now, missing))
    return rates


def key_states(keys, now: datetime, burn_for: int = MAX_CARDS) -> list[KeyState]:
    """The state of each key (in the keys' order); the burn rate for the first `burn_for` only."""
    keys = list(keys)
    ids = ApiKey.objects.filter(pk__in=[k.pk for k in keys])
    latest = CreditLog.objects.latest_by_key(ids)
    latest_ok = CreditLog.objects.successful().latest_by_key(ids)
    open_alerts = Alert.objects.open().filter(key__in=ids).by_key()
    states = [KeyState(k, latest.get(k.pk), latest_ok.get(k.pk), open_alerts.get(k.pk, []), now=now) for k in keys]
    with_burn = [s for s in states[:burn_for] if s.ok_log is not None]
    if with_burn:
        # One query of index look-ups for every card (running totals), the stored activity where it falls short.
        days = settings.BURN_RATE_WINDOW_DAYS
        rates = CreditLog.objects.burn_rates([s.key for s in with_burn], now, {"w": days})
        unknown = [s.key for s in with_burn if rates[s.key.pk]["w"] is None]
        counts = dict(
            CreditLog.objects.successful()
            .filter(key__in=unknown, usage__isnull=False, timestamp__gte=now - timedelta(days=days), timestamp__lte=now)
            .order_by()
            .values_list("key")
            .annotate(n=Count("id"))
            if unknown
            else []
        )
        for state in with_burn:
            state.burn_rate = with_activity(state.key, {days: rates[state.key.pk]["w"]}, now)[days]
            state.samples = counts.get(state.key.pk, 0) if state.key in unknown else 2
    return states


# --- System Health ---------------------------------------------------------------------------


def health(now: datetime) -> dict:
    keys = list(ApiKey.objects.all())
    states = key_states(keys, now)
    last_log = CreditLog.objects.select_related("key").order_by("-timestamp", "-id").first()
    account_log = CreditLog.objects.successful().filter(account_balance__isnull=False).order_by("-timestamp").first()
    unattached = Alert.objects.open().filter(key__isnull=True).order_by("-level", "-opened_at")
    return {
        "configured": is_configured(),
        "states": states,
        "cards": states[:MAX_CARDS],
        "more_keys": len(states) > MAX_CARDS,
        "overall_level": LEVEL_CSS[Level(worst_level(s.level for s in states))] if states else "unknown",
        "last_log": last_log,
        "last_error_hint": hint_unless_said(last_log) if last_log and not last_log.ok else "",
        "account_log": account_log,
        "account_alerts": list(unattached),
        "next_check": monitor.next_check_time(),
        "threshold": settings.OPENROUTER_CREDIT_THRESHOLD,
    }


# --- Financial -------------------------------------------------------------------------------


def range_start(now: datetime, days: int | None, tz: tzinfo) -> datetime | None:
    """Local midnight `days - 1` days ago, so the range holds `days` calendar days including today."""
    if days is None:
        return None
    local = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return local - timedelta(days=days - 1)


def bucket_label(bucket: datetime, kind: str) -> str:
    day = bucket.date().isoformat()
    return f"week of {day}" if kind == "week" else day


def spend_per_bucket(buckets: list[dict]) -> list[float]:
    """Spend in each bucket from the cumulative usage at the end of it (and of the one before)."""
    spends, previous = [], None
    for row in buckets:
        high, low = row["high"], row["low"]
        if high is None:
            spends.append(0.0)
            continue
        spends.append(forecast.spend_between(previous, high) if previous is not None else high - (low or high))
        previous = high
    return spends


def month_to_date(samples: list[tuple[datetime, float]], month_start: datetime) -> float:
    """Spend since `month_start` from cumulative readings (the reading just before it is the base)."""
    ordered = forecast.clean_samples(samples)
    return sum(
        forecast.spend_between(before, after)
        for (_, before), (when, after) in zip(ordered, ordered[1:], strict=False)
        if when >= month_start
    )


def stacked(rows: list[dict], field: str, series: list[str], totals: dict, names: dict) -> dict:
    """Chart.js-ready stacked daily bars: one dataset per series plus "Other" (the rest of the total)."""
    labels = sorted(set(totals) | {row["date"] for row in rows})
    by = defaultdict(float)
    for row in rows:
        by[(row["date"], row[field])] += row["spend"] or 0.0
    datasets = [
        {"label": names.get(value, value), "data": [round(by[(day, value)], 4) for day in labels]} for value in series
    ]
    other = [round(max(totals.get(day, 0.0) - sum(by[(day, v)] for v in series), 0.0), 4) for day in labels]
    if any(other):
        datasets.append({"label": "Other", "data": other})
    return {"labels": [day.isoformat() for day in labels], "datasets": datasets}


def drivers(totals: list[dict], field: str, names: dict) -> list[dict]:
    grand = sum(row["spend"] or 0.0 for row in totals) or 1.0
    return [
        {
            "name": names.get(row[field], row[field]),
            "spend": row["spend"] or 0.0,
            "calls": row.get("calls"),
            "share": (row["spend"] or 0.0) / grand * 100,
        }
        for row in totals
    ]


def key_financials(key: ApiKey, now: datetime, start: datetime | None, kind: str, tz: tzinfo) -> dict:
    """One key's burn rates, forecast, daily spend bars and remaining-balance line."""
    logs = CreditLog.objects.successful().for_key(key)
    # The daily rows (one per key per local day), never the raw log: a year is 365 rows, not 100,000.
    since = (start - timedelta(days=1)).date() if start else None
    buckets = DailyFigure.objects.filter(key=key).buckets(kind, tz, since)
    rows = logs.last_rows(buckets)
    spends = spend_per_bucket(buckets)
    days, balance, limits = [], [], []
    for bucket, spend in zip(buckets, spends, strict=True):
        if start and bucket["bucket"] < start:
            continue  # the bucket before the range only gives the first day its starting usage
        row = rows[bucket["last_id"]]
        days.append({"label": bucket_label(bucket["bucket"], kind), "spend": spend, "remaining": row.remaining})
        if row.remaining is not None:
            balance.append((row.timestamp, row.remaining))
        limits.append((row.timestamp, row.credit_limit, row.account_credits, row.remaining))

    # Burn rates and month to date from running spend totals: index look-ups, whatever the history.
    month_start, _ = forecast.month_bounds(now, tz)
    window = settings.BURN_RATE_WINDOW_DAYS
    windows = {str(d): d for d in sorted({d for _, d in BURN_WINDOWS} | {window})}
    since = min(now - timedelta(days=max(30, window)), month_start - timedelta(hours=1))
    month = {"month": (now - month_start).total_seconds() / forecast.SECONDS_PER_DAY}
    readings = CreditLog.objects.filter(key=OuterRef("pk"), ok=True, usage__isnull=False)
    before = readings.filter(timestamp__gte=since, timestamp__lt=month_start).order_by("-timestamp", "-usage", "-id")
    row = (
        ApiKey.objects.filter(pk=key.pk)
        .annotate(**window_annotations(now, windows | month), s_before=Subquery(before.values("spend_total")[:1]))
        .annotate(t_before=Subquery(before.values("timestamp")[:1]))
        .get()
    )
    found, missing = rates_from_totals(row, windows)
    base = (row.t_before, row.s_before) if row.t_before is not None else (row.t_month, row.s_month)
    mtd = row.s_last - base[1] if base[0] is not None and None not in (row.s_last, base[1]) else 0.0
    samples = 2 if any(rate is not None for rate in found.values()) else 0
    if missing or (base[0] is not None and None in (row.s_last, base[1])):
        # Rows bulk-loaded without running totals: the database sums the readings instead.
        summed = CreditLog.objects.spend_windows(
            [key], now, {d: now - timedelta(days=days) for d, days in windows.items()} | {"m": month_start, "s": since}
        ).get(key.pk, {})
        found = {d: summed[d].rate if summed else None for d in windows}
        mtd = summed["m"].spent_after if summed else 0.0
        samples = summed["s"].count if summed else 0
    elif samples == 0:
        samples = CreditLog.objects.successful().for_key(key).filter(usage__isnull=False, timestamp__gte=since).count()
    by_window = with_activity(key, {int(d): rate for d, rate in found.items()}, now)
    rates = [{"label": label, "days": d, "rate": by_window[d]} for label, d in BURN_WINDOWS]
    burn = by_window[window]
    latest = logs.order_by("-timestamp", "-id").first()
    remaining = latest.remaining if latest else None
    days_left = forecast.days_until_exhaustion(remaining, burn)

    # Top-ups: the key's cap raised, or the account's purchased credits rising.
    marks: dict[datetime, float] = {}
    for column in (1, 2):
        for when, amount in forecast.topups([(row[0], row[column]) for row in limits if row[column] is not None]):
            marks[when] = marks.get(when, 0.0) + amount
    remaining_at = {when: rem for when, _, _, rem in limits}
    topup_points = [
        {"x": ms(when), "y": remaining_at[when], "amount": round(amount, 2)}
        for when, amount in sorted(marks.items())
        if remaining_at.get(when) is not None
    ]
    return {
        "latest": latest,
        "remaining": remaining,
        "rates": rates,
        "burn_rate": burn,
        "burn_window": settings.BURN_RATE_WINDOW_DAYS,
        "samples": samples,
        "days_left": days_left,
        "exhaustion_date": forecast.exhaustion_date(now, days_left),
        "month_to_date": mtd,
        "projected_month": forecast.projected_month_spend(mtd, burn, now, tz) if burn is not None else None,
        "days": days,
        "topups": [{"when": datetime.fromtimestamp(p["x"] / 1000, UTC), "amount": p["amount"]} for p in topup_points],
        "chart": {
            "spend": {"labels": [d["label"] for d in days], "values": [round(d["spend"], 4) for d in days]},
            "balance": {
                "points": [{"x": ms(when), "y": round(value, 4)} for when, value in balance],
                "forecast": [
                    {"x": ms(when), "y": round(value, 4)}
                    for when, value in forecast.forecast_line(now, remaining, burn)
                ],
                "topups": topup_points,
            },
        },
    }


def account_financials(now: datetime, start: datetime | None, kind: str, tz: tzinfo) -> dict:
    """The account balance line (top-ups marked), month to date and the month-end projection."""
    logs = CreditLog.objects.successful().filter(account_balance__isnull=False)
    buckets = DailyFigure.objects.buckets(kind, tz, start.date() if start else None, account=True)
    rows = logs.last_rows(buckets)
    series = [rows[b["last_id"]] for b in buckets]
    topups = forecast.topups([(row.timestamp, row.account_credits) for row in series])
    balance_at = {row.timestamp: row.account_balance for row in series}
    month_start, month_end = forecast.month_bounds(now, tz)
    since = min(now - timedelta(days=settings.BURN_RATE_WINDOW_DAYS), month_start - timedelta(hours=1))
    mtd, burn, source = None, None, ""
    with_activity = Activity.objects.account_wide().exists()
    samples = [] if with_activity else hourly_samples(logs, since, value="account_usage")
    if with_activity:
        # The same figures the budget alert uses: stored activity for past days, the checks for today.
        mtd, burn, source = account_sync.month_to_date_spend(now), account_sync.account_burn_rate(now), "activity"
    elif samples:
        mtd = month_to_date(samples, month_start)
        burn = forecast.burn_rate_per_day(samples, now, settings.BURN_RATE_WINDOW_DAYS)
        source = "account"
    else:
        # No account figures (no management key): add up the watched keys' own spend this month.
        per_key = CreditLog.objects.successful().since(month_start - timedelta(days=1)).buckets("day", tz, by_key=True)
        grouped = defaultdict(list)
        for row in per_key:
            grouped[row["key_id"]].append(row)
        if grouped:
            mtd, burn, source = 0.0, 0.0, "keys"
            week_ago = now - timedelta(days=settings.BURN_RATE_WINDOW_DAYS)
            for key_rows in grouped.values():
                spends = spend_per_bucket(key_rows)
                mtd += sum(s for row, s in zip(key_rows, spends, strict=True) if row["bucket"] >= month_start)
                rate = forecast.burn_rate_per_day(
                    [(r["last_at"], r["high"]) for r in key_rows if r["high"] is not None],
                    now,
                    settings.BURN_RATE_WINDOW_DAYS,
                )
                burn += rate or 0.0
            burn = burn if len(per_key) > 1 and any(r["last_at"] >= week_ago for r in per_key) else None
    projected = forecast.projected_month_spend(mtd, burn, now, tz) if mtd is not None and burn is not None else None
    budget = settings.MONTHLY_BUDGET or None
    return {
        "latest": series[-1] if series else None,
        "points": len(series),
        "month_start": month_start,
        "month_end": month_end - timedelta(seconds=1),
        "month_to_date": mtd,
        "burn_rate": burn,
        "projected": projected,
        "source": source,
        "budget": budget,
        "budget_used_percent": mtd / budget * 100 if budget and mtd is not None else None,
        "over_budget": bool(budget and projected is not None and projected > budget),
        "topups": [{"when": when, "amount": amount} for when, amount in topups],
        "chart": {
            "points": [{"x": ms(row.timestamp), "y": round(row.account_balance, 4)} for row in series],
            "topups": [
                {"x": ms(when), "y": round(balance_at[when], 4), "amount": round(amount, 2)} for when, amount in topups
            ],
            "budget": budget,
        },
    }


def sums_by(activity, field: str) -> tuple[list[dict], list[dict], dict]:
    """(the 10 biggest `field` values with spend and calls, the daily rows, spend per day) from one grouped
    query: a year is a row per day per model or key, summed here, not three scans of the activity table."""
    daily = activity.daily_sums(field)
    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    per_day: dict[date, float] = defaultdict(float)
    for row in daily:
        total = totals[row[field]]
        total[0] += row["spend"] or 0.0
        total[1] += row["calls"] or 0
        per_day[row["date"]] += row["spend"] or 0.0
    biggest = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:10]
    return [{field: value, "spend": spend, "calls": calls} for value, (spend, calls) in biggest], daily, per_day


def spend_breakdown(start: datetime | None, tz: tzinfo) -> dict:
    """Spend by model and by key from the stored /activity rows (UTC days, as OpenRouter buckets them)."""
    activity = Activity.objects.all()
    if start is not None:
        activity = activity.filter(date__gte=start.astimezone(tz).date())
    model_totals, model_days, model_per_day = sums_by(activity.account_wide(), "model")
    if not model_totals:  # only per-key rows stored: their sum is the account's
        model_totals, model_days, model_per_day = sums_by(activity.per_key(), "model")
    top_models = [row["model"] for row in model_totals[:TOP_N]]
    models_chart = stacked(model_days, "model", top_models, model_per_day, {}) if model_totals else None

    key_totals, key_days, key_per_day = sums_by(activity.per_key(), "api_key_hash")
    names = {k.hash: k.display_name for k in ApiKey.objects.filter(hash__in=[r["api_key_hash"] for r in key_totals])}
    top_keys = [row["api_key_hash"] for row in key_totals[:TOP_N]]
    keys_chart = stacked(key_days, "api_key_hash", top_keys, key_per_day, names) if key_totals else None
    keys = drivers(key_totals, "api_key_hash", names)
    if not key_totals:
        keys, keys_chart = logged_spend_by_key(start, tz)
    return {
        "models": drivers(model_totals, "model", {}),
        "keys": keys,
        "keys_source": "activity" if key_totals else "checks",
        "chart": {"models": models_chart, "keys": keys_chart},
    }


def logged_spend_by_key(start: datetime | None, tz: tzinfo) -> tuple[list[dict], dict | None]:
    """Spend by key from the logged checks (keys given directly, no management key): one query."""
    logs = CreditLog.objects.successful().filter(usage__isnull=False)
    window = logs.since(start - timedelta(days=1)) if start else logs
    per_key = defaultdict(list)
    for row in window.buckets("day", tz, by_key=True):
        per_key[row["key_id"]].append(row)
    daily: dict[int, dict[date, float]] = {}
    for key_id, rows in per_key.items():
        spends = spend_per_bucket(rows)
        daily[key_id] = {
            row["bucket"].date(): spend
            for row, spend in zip(rows, spends, strict=True)
            if not start or row["bucket"] >= start
        }
    totals = sorted(((sum(d.values()), key_id) for key_id, d in daily.items()), reverse=True)
    totals = [(spend, key_id) for spend, key_id in totals if spend > 0]
    if not totals:
        return [], None
    names = {k.pk: k.display_name for k in ApiKey.objects.filter(pk__in=[key_id for _, key_id in totals[:10]])}
    rows = [{"key": key_id, "spend": spend} for spend, key_id in totals[:10]]
    flat = [{"date": day, "key": key_id, "spend": v} for key_id, d in daily.items() for day, v in d.items()]
    by_day: dict[date, float] = defaultdict(float)
    for item in flat:
        by_day[item["date"]] += item["spend"]
    top = [key_id for _, key_id in totals[:TOP_N]]
    chart = stacked([f for f in flat if f["key"] in top], "key", top, by_day, names)
    return drivers(rows, "key", names), chart


def financial(now: datetime, key: ApiKey | None, range_name: str) -> dict:
    tz = reporting_tz()
    DailyFigure.objects.refresh()  # fold the checks logged since the last view (a few rows)
    days = RANGES[range_name]
    start = range_start(now, days, tz)
    kind = "day"
    if days is None and key is not None:
        first = CreditLog.objects.successful().for_key(key).aggregate(first=Min("timestamp"))["first"]
        span = (now - first).days + 1 if first else 1
        kind = "week" if span > WEEKLY_AFTER_DAYS else "day"
        days = span
    ctx = {
        "configured": is_configured(),
        "range_days": days or 1,
        "bucket": kind,
        "budget": settings.MONTHLY_BUDGET or None,
        "next_check": monitor.next_check_time(),
    }
    ctx["key_data"] = key_financials(key, now, start, kind, tz) if key is not None else None
    ctx["account"] = account_financials(now, start, kind, tz)
    ctx["breakdown"] = spend_breakdown(start, tz)
    ctx["chart"] = {
        **(ctx["key_data"]["chart"] if key is not None else {}),
        "account": ctx["account"]["chart"],
        **ctx["breakdown"]["chart"],
        "tz": settings.CREDITMON_TIME_ZONE,
    }
    return ctx


# --- Alerts ----------------------------------------------------------------------------------


def thresholds() -> list[tuple[str, str]]:
    """The thresholds in force, as label and value, for the Alerts page."""
    budget = settings.MONTHLY_BUDGET
    return [
        ("Warning below", f"${settings.OPENROUTER_CREDIT_THRESHOLD:,.2f}"),
        ("Critical at or below", f"${settings.OPENROUTER_MIN_BALANCE:,.2f}"),
        (
            "Days-left forecast",
            f"warning under {settings.FORECAST_WARNING_DAYS:g} days, "
            f"critical under {settings.FORECAST_CRITICAL_DAYS:g}",
        ),
        (
            "Key limit used",
            f"warning at {settings.KEY_LIMIT_WARNING_PERCENT:g}%, critical at {settings.KEY_LIMIT_CRITICAL_PERCENT:g}%",
        ),
        ("Spend spike", f"{settings.SPIKE_FACTOR:g}× the average and over ${settings.SPIKE_MIN_USD:,.2f}"),
        ("Monthly budget", f"${budget:,.2f}" if budget else "none set (MONTHLY_BUDGET)"),
        ("Failures before UNKNOWN", str(settings.FAILURES_BEFORE_UNKNOWN)),
        ("Reminders while open", f"every {settings.REMIND_INTERVAL_HOURS:g} h"),
    ]
