"""How sure the forecast is: a key's exhaustion range (10th to 90th percentile) from its daily spend.

Reads the key's completed days of spend (logged checks, else stored activity) and hands them to the pure
forecast.exhaustion_range. Warnings quote the pessimistic end: "may run out as early as Tue 3 Dec".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import OuterRef, Subquery, Sum

from . import forecast
from .models import Activity, ApiKey, CreditLog, DailyFigure

HISTORY_DAYS = 28  # four of each weekday
LOW, HIGH = 0.1, 0.9


def reporting_tz() -> ZoneInfo:
    return ZoneInfo(settings.CREDITMON_TIME_ZONE)


def key_daily_spend(key: ApiKey, now: datetime, fold: bool = True, activity: bool = True) -> dict[date, float]:
    """Spend per completed day (reporting zone) over the last HISTORY_DAYS, from the daily rows (one per key
    per day: 29 rows, never a month of checks) and the running spend totals of their last checks; from the
    key's stored activity (UTC days) when the log covers too few days. `fold`: fold the new checks into the
    daily rows first (a page that just did skips it); `activity`: allow that fallback (one more query)."""
    return daily_spend_by_key([key], now, fold, activity)[key.pk]


def daily_spend_by_key(
    keys: list[ApiKey], now: datetime, fold: bool = True, activity: bool = True
) -> dict[int, dict[date, float]]:
    """key_daily_spend for several keys: two queries whatever their number."""
    if fold:
        DailyFigure.objects.refresh()  # the checks logged since the last fold: two queries when nothing is new
    if not keys:
        return {}
    today = now.astimezone(reporting_tz()).date()
    last_total = CreditLog.objects.filter(pk=OuterRef("last_id")).values("spend_total")[:1]
    figures: dict[int, list] = {key.pk: [] for key in keys}
    rows = (
        DailyFigure.objects.filter(key__in=keys, day__gte=today - timedelta(days=HISTORY_DAYS + 1), day__lt=today)
        .annotate(total=Subquery(last_total))
        .order_by("key_id", "day")
        .values_list("key_id", "day", "total", "usage_high")
    )
    for key_id, *row in rows:
        figures[key_id].append(row)
    found: dict[int, dict[date, float]] = {}
    for key_id, key_rows in figures.items():
        days: dict[date, float] = {}
        for (before, start, before_usage), (day, end, usage) in pairwise(key_rows):
            for n in range(1, (day - before).days):
                days[before + timedelta(days=n)] = 0.0  # no check that day: nothing observed
            if start is not None and end is not None:
                days[day] = end - start
            elif before_usage is not None and usage is not None:  # rows loaded without running totals
                days[day] = forecast.spend_between(before_usage, usage)
        found[key_id] = days
    short = [key for key in keys if len(found[key.pk]) < forecast.MIN_RANGE_DAYS]
    if short and activity:
        utc_today = now.astimezone(UTC).date()
        stored = (
            Activity.objects.filter(api_key_hash__in=[key.hash for key in short])
            .between(utc_today - timedelta(days=HISTORY_DAYS), utc_today - timedelta(days=1))
            .order_by()
            .values_list("api_key_hash", "date")
            .annotate(total=Sum("usage"))
            .values_list("api_key_hash", "date", "total")
        )
        by_hash: dict[str, dict[date, float]] = {}
        for key_hash, day, total in stored:
            by_hash.setdefault(key_hash, {})[day] = total or 0.0
        for key in short:
            if len(by_hash.get(key.hash, {})) > len(found[key.pk]):
                found[key.pk] = by_hash[key.hash]
    return found


def key_range(
    key: ApiKey | None, remaining: float | None, now: datetime, **reading
) -> tuple[datetime | None, datetime | None]:
    """(earliest, latest) exhaustion, or (None, None) when it cannot be said. `reading`: key_daily_spend's options."""
    if key is None or remaining is None:
        return None, None
    daily = key_daily_spend(key, now, **reading)
    found = forecast.exhaustion_range(remaining, daily, now, reporting_tz(), LOW, HIGH)
    return found if found is not None else (None, None)


def range_dict(earliest: datetime | None, latest: datetime | None) -> dict:
    """For the JSON API: both ends as ISO times (null: unknown, or beyond a year)."""
    return {
        "earliest": earliest.isoformat() if earliest else None,
        "latest": latest.isoformat() if latest else None,
        "percentiles": [round(LOW * 100), round(HIGH * 100)],
    }


def range_text(earliest: datetime | None, latest: datetime | None) -> str:
    """'may run out as early as Tue 3 Dec (as late as Fri 6 Dec)', or '' when unknown."""
    if earliest is None:
        return ""
    tz = reporting_tz()
    late = f" (as late as {forecast.day_label(latest, tz)})" if latest else " (or not within a year)"
    return f"may run out as early as {forecast.day_label(earliest, tz)}{late}"
