"""Burn rate and forecasts: pure functions over plain values, `now` passed in. No Django here.

Spend is measured from changes in the key's cumulative `usage`, never from the balance, so a
top-up (balance jumps up, usage does not) cannot distort it. A key reset (usage falls) is read
the way Prometheus reads a counter reset: the new value is the spend since the reset.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from itertools import pairwise
from statistics import NormalDist

Sample = tuple[datetime, float]  # (when, cumulative usage in USD)

SECONDS_PER_DAY = 86400.0


ROUNDING_USD = 1e-6  # a drop this small is the API's rounding (it serves 8 decimals), not a counter reset


def spend_between(previous: float, current: float) -> float:
    """Spend between two cumulative usage readings; a drop means the counter was reset (a rounding is none)."""
    if current >= previous:
        return current - previous
    return 0.0 if current >= previous - ROUNDING_USD else current


def clean_samples(samples: Iterable[Sample]) -> list[Sample]:
    """Drop readings without usage and sort by time."""
    return sorted((when, float(usage)) for when, usage in samples if usage is not None)


def burn_rate_per_day(samples: Iterable[Sample], now: datetime, window_days: float = 7) -> float | None:
    """Average daily spend over the window ending at `now`; None with fewer than two readings.

    The spend between consecutive readings is summed and divided by the time those readings
    span, so uneven spacing and gaps are handled without interpolation.
    """
    start = now - timedelta(days=window_days)
    inside = [(when, usage) for when, usage in clean_samples(samples) if start <= when <= now]
    if len(inside) < 2:
        return None
    span_days = (inside[-1][0] - inside[0][0]).total_seconds() / SECONDS_PER_DAY
    if span_days <= 0:
        return None
    spent = sum(spend_between(a[1], b[1]) for a, b in pairwise(inside))
    return spent / span_days


HORIZON_DAYS = 36_525.0  # a hundred years: a forecast past it is no forecast (and past a datetime's range)


def days_until_exhaustion(remaining: float | None, burn_rate: float | None) -> float | None:
    """Days until the balance reaches zero at the given rate; None when it cannot be said."""
    if remaining is None or burn_rate is None:
        return None
    if remaining <= 0:
        return 0.0
    if burn_rate <= 0:
        return None  # nothing is being spent: it never runs out at this rate
    days = remaining / burn_rate
    return days if days <= HORIZON_DAYS else None  # a rate of a fraction of a cent: not in sight either


def exhaustion_date(now: datetime, days_left: float | None) -> datetime | None:
    """When the balance runs out, or None."""
    if days_left is None or days_left > HORIZON_DAYS:
        return None
    return now + timedelta(days=days_left)


def daily_spend(samples: Iterable[Sample], tz: tzinfo) -> dict[date, float]:
    """Spend per calendar day in `tz`, each reading's spend counted on the day it was observed."""
    ordered = clean_samples(samples)
    totals: dict[date, float] = {}
    for (_, before), (when, after) in pairwise(ordered):
        day = when.astimezone(tz).date()
        totals[day] = totals.get(day, 0.0) + spend_between(before, after)
    return totals


def spend_today(samples: Iterable[Sample], now: datetime, tz: tzinfo) -> float:
    """Spend observed since local midnight of `now`."""
    return daily_spend(samples, tz).get(now.astimezone(tz).date(), 0.0)


def is_spike(today: float, average_per_day: float | None, factor: float, floor: float) -> bool:
    """Today's spend far above the recent average (and above a floor, so cents never alarm)."""
    if average_per_day is None or today < floor:
        return False
    return today > factor * max(average_per_day, 0.0)


def month_bounds(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start of this calendar month and of the next, in `tz`."""
    local = now.astimezone(tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(local.year, local.month)[1]
    return start, start + timedelta(days=days)


def projected_month_spend(
    month_to_date: float, burn_rate: float | None, now: datetime, tz: tzinfo, money_days: float | None = None
) -> float | None:
    """Spend so far this month plus the burn rate over the days left in it, or only over `money_days` when the
    money runs out before the month ends (nothing more can be spent then)."""
    if burn_rate is None:
        return None
    _, month_end = month_bounds(now, tz)
    days_left = (month_end - now.astimezone(tz)).total_seconds() / SECONDS_PER_DAY
    if money_days is not None:
        days_left = min(days_left, max(money_days, 0.0))
    return month_to_date + max(burn_rate, 0.0) * days_left


def topups(balances: Sequence[tuple[datetime, float]], min_amount: float = 0.01) -> list[tuple[datetime, float]]:
    """Times the purchased total rose, and by how much (from a series of total_credits or limits)."""
    found = []
    for (_, before), (when, after) in pairwise(balances):
        if before is not None and after is not None and after - before >= min_amount:
            found.append((when, after - before))
    return found


def forecast_line(now: datetime, remaining: float | None, burn_rate: float | None, max_days: float = 365):
    """Two points, now and exhaustion (or the horizon), for drawing the forecast on a chart."""
    if remaining is None or burn_rate is None or burn_rate <= 0:
        return []
    days = min(remaining / burn_rate if remaining > 0 else 0.0, max_days)
    return [(now, remaining), (now + timedelta(days=days), max(remaining - burn_rate * days, 0.0))]


def average_per_day(totals: dict[date, float], first: date, last: date) -> float | None:
    """Average daily spend over the calendar days first..last (days missing from `totals` spent 0)."""
    if last < first:
        return None
    days = (last - first).days + 1
    return sum(amount for day, amount in totals.items() if first <= day <= last) / days


def topup_missed(readings: Sequence[tuple[float, float]], threshold: float, checks: int = 3) -> bool:
    """The last `checks` (balance, total_credits) readings, oldest first, sit below the threshold,
    keep falling and show no purchase: an auto top-up that should have fired did not."""
    last = list(readings)[-checks:]
    if checks < 2 or len(last) < checks:
        return False
    below = all(balance < threshold for balance, _ in last)
    falling = all(after < before for (before, _), (after, _) in zip(last, last[1:], strict=False))
    flat = all(abs(after - before) < 0.005 for (_, before), (_, after) in zip(last, last[1:], strict=False))
    return below and falling and flat


# --- the exhaustion range: how sure the forecast is ------------------------------------------

MIN_RANGE_DAYS = 3  # completed days of spend needed before a range is given
WEEKDAY_MIN_WEEKS = 2  # each weekday seen this often before the weekday pattern is used


def weekday_means(daily: dict[date, float]) -> dict[int, float]:
    """Mean spend per weekday (0 = Monday), when every weekday was seen WEEKDAY_MIN_WEEKS times;
    otherwise the overall mean for every weekday (too little history for a pattern)."""
    overall = sum(daily.values()) / len(daily) if daily else 0.0
    by_day: dict[int, list[float]] = {}
    for day, amount in daily.items():
        by_day.setdefault(day.weekday(), []).append(amount)
    if len(by_day) < 7 or min(len(v) for v in by_day.values()) < WEEKDAY_MIN_WEEKS:
        return dict.fromkeys(range(7), overall)
    return {weekday: sum(v) / len(v) for weekday, v in by_day.items()}


def daily_spread(daily: dict[date, float], means: dict[int, float]) -> float:
    """Standard deviation of a day's spend around its weekday's mean."""
    residuals = [amount - means[day.weekday()] for day, amount in daily.items()]
    if len(residuals) < 2:
        return 0.0
    return (sum(r * r for r in residuals) / (len(residuals) - 1)) ** 0.5


def exhaustion_range(
    remaining: float | None,
    daily: dict[date, float],
    now: datetime,
    tz: tzinfo,
    low: float = 0.1,
    high: float = 0.9,
    max_days: float = 365,
) -> tuple[datetime | None, datetime | None] | None:
    """The `low`..`high` percentile range of the exhaustion time, earliest first, from completed days' spend.

    Each future hour spends its weekday's mean (weekday_means) per day; the days' spread around those
    means adds up as independent noise (variance grows with n days) plus the uncertainty of the means
    themselves (they come from k days: variance grows with n^2/k). The earliest end is when the
    cumulative spend at its `high` percentile reaches `remaining`; the latest when its `low` percentile
    does. None without a balance or with fewer than MIN_RANGE_DAYS days; an end beyond `max_days` is None.
    """
    if remaining is None or len(daily) < MIN_RANGE_DAYS:
        return None
    if remaining <= 0:
        return now, now
    means = weekday_means(daily)
    sigma = daily_spread(daily, means)
    k = len(daily)
    z_high, z_low = NormalDist().inv_cdf(high), NormalDist().inv_cdf(low)
    mean_total = variance_days = elapsed = 0.0
    earliest = latest = None
    when = now
    while elapsed < max_days and latest is None:
        # Hourly near at hand, coarser further out (a day is the resolution a far date is told in): a range a
        # year out costs a few hundred steps, not 8,760.
        step = timedelta(hours=1 if elapsed < 2 else 6 if elapsed < 14 else 24)
        fraction = step.total_seconds() / SECONDS_PER_DAY
        mean_total += means[when.astimezone(tz).weekday()] * fraction
        elapsed += fraction
        variance_days += fraction
        when += step
        spread = sigma * (variance_days + elapsed * elapsed / k) ** 0.5
        if earliest is None and mean_total + z_high * spread >= remaining - 1e-9:  # hourly sums round off
            earliest = when
        if mean_total + z_low * spread >= remaining - 1e-9:
            latest = when
    return earliest, latest


def day_label(when: datetime, tz: tzinfo) -> str:
    """'Tue 3 Dec' in the reporting zone: the words a warning uses."""
    local = when.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b}"


# --- budget layers: each forecast within its own window ---------------------------------------


@dataclass(frozen=True)
class LayerForecast:
    """When a budget layer blocks, or that it holds until its reset and what it projects to by then."""

    days_left: float | None  # until it blocks; None: it holds (or no rate to say)
    blocks_at: datetime | None
    projected: float | None = None  # spend projected at the reset, for a layer that holds
    holds: bool = False  # it resets before it runs out (or nothing is spent)


def layer_forecast(
    remaining: float, spent: float, rate: float | None, now: datetime, resets_at: datetime | None
) -> LayerForecast:
    """A layer with `remaining` USD in its window, spending `rate` USD/day: blocked now, blocks before its
    reset (`resets_at`; None = a lifetime budget, forecast like the key's cap), or holds until the reset."""
    if remaining <= 0:
        return LayerForecast(0.0, now)
    if rate is None:
        return LayerForecast(None, None)
    until_reset = (resets_at - now).total_seconds() / SECONDS_PER_DAY if resets_at is not None else None
    if rate <= 0:
        return LayerForecast(None, None, spent if until_reset is not None else None, True)
    days = remaining / rate
    if until_reset is None and days > HORIZON_DAYS:
        return LayerForecast(None, None)  # a lifetime budget spent a fraction of a cent at a time: not in sight
    if until_reset is not None and days >= until_reset:
        return LayerForecast(None, None, spent + rate * max(until_reset, 0.0), True)
    return LayerForecast(days, now + timedelta(days=days))


def layer_rate(samples: Iterable[Sample], now: datetime, window_days: float, min_span_days: float) -> float | None:
    """A layer's own spend rate from its spend_usd readings (a drop is its reset), when they span enough time."""
    inside = [(when, spend) for when, spend in clean_samples(samples) if now - timedelta(days=window_days) <= when]
    if len(inside) < 2 or (inside[-1][0] - inside[0][0]).total_seconds() / SECONDS_PER_DAY < min_span_days:
        return None
    return burn_rate_per_day(inside, now, window_days)


def share_level_index(spent: float, limit: float, percents: Sequence[float]) -> int:
    """How many of the ascending `percents` the share spent has reached (0: none)."""
    if limit <= 0:
        return len(percents)
    share = spent / limit * 100
    return sum(1 for p in percents if share >= p - 1e-9)
