"""Figures the database computes for speed must equal what the pure functions compute from the rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitoring import forecast
from monitoring.models import ApiKey, CreditLog

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOWS = {"1d": 1, "7d": 7, "30d": 30, "half": 0.5}


def random_series(rng: random.Random, key: ApiKey) -> list[CreditLog]:
    """Readings over ~40 days with uneven spacing, gaps, resets, top-ups, failures and missing usage."""
    rows, usage, credits = [], rng.uniform(0, 50), 100.0
    when = NOW - timedelta(days=rng.uniform(0.1, 40))
    while when <= NOW + timedelta(hours=3):  # a few readings after `now` too: they must not count
        roll = rng.random()
        if roll < 0.05:
            rows.append(CreditLog(key=key, timestamp=when, ok=False, error="OpenRouter API error (502)"))
        elif roll < 0.08:
            rows.append(CreditLog(key=key, timestamp=when, usage=None, remaining=1.0))
        else:
            if rng.random() < 0.04:
                usage = rng.uniform(0, 3)  # the counter was reset
            elif rng.random() < 0.03:
                credits += 50  # a top-up moves the balance, never the usage
            else:
                usage += rng.choice([0.0, rng.uniform(0, 2), rng.uniform(0, 0.01)])
            balance = credits - usage if rng.random() < 0.7 else None  # without a management key: none
            rows.append(
                CreditLog(
                    key=key, timestamp=when, usage=round(usage, 6), remaining=credits - usage, account_balance=balance
                ),
            )
        if rng.random() < 0.1:
            rows.append(CreditLog(key=key, timestamp=when, usage=round(usage + 0.5, 6)))  # same instant
        step = rng.choice([timedelta(minutes=5), timedelta(minutes=rng.randint(1, 300)), timedelta(days=2)])
        when += step if rng.random() > 0.02 else timedelta(days=rng.uniform(1, 9))  # a gap
    return rows


def chained(rows: list[CreditLog]) -> None:
    """Write rows one at a time in time order, as the monitor does, each chaining its running total."""
    for row in sorted(rows, key=lambda r: r.timestamp):
        if row.ok:
            row.spend_total = CreditLog.objects.next_spend_total(row.key, row.timestamp, row.usage)
        row.save()


@pytest.mark.django_db
@pytest.mark.parametrize("written", ["bulk-loaded", "recomputed", "chained"])
def test_the_database_burn_rate_equals_the_forecast_on_random_series(written):
    rng = random.Random(20261125)
    keys = [ApiKey.objects.create(hash=f"{n:064d}", name=f"k{n}") for n in range(300 if written != "chained" else 40)]
    for key in keys:
        rows = random_series(rng, key)
        chained(rows) if written == "chained" else CreditLog.objects.bulk_create(rows)
    if written == "recomputed":
        CreditLog.objects.recompute_spend_totals()
    readings = CreditLog.objects.filter(ok=True, usage__isnull=False)
    if written == "bulk-loaded":
        assert not readings.filter(spend_total__isnull=False).exists()  # the database sums the rows
    else:
        assert readings.filter(spend_total__isnull=True).count() < readings.count() / 20  # totals mostly read
    found = CreditLog.objects.burn_rates(keys, NOW, WINDOWS)
    single = {k.pk: CreditLog.objects.burn_rate(k, NOW, 7) for k in keys[:40]}
    compared = with_rate = 0
    for key in keys:
        samples = CreditLog.objects.usage_samples(key, NOW - timedelta(days=60))
        for label, days in WINDOWS.items():
            expected = forecast.burn_rate_per_day(samples, NOW, days)
            got = found[key.pk][label]
            if label == "7d" and key.pk in single:
                assert single[key.pk] == (got if got is None else pytest.approx(got, rel=1e-9, abs=1e-9))
            compared += 1
            if expected is None:
                assert got is None, (key.name, label)
            else:
                with_rate += 1
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), (key.name, label)
    assert compared == len(keys) * len(WINDOWS)
    assert with_rate > compared / 2  # most windows hold readings: the comparison is not of Nones


@pytest.mark.django_db
def test_a_reset_followed_by_more_spend_is_not_understated():
    key = ApiKey.objects.create(hash="r" * 64, name="Reset")
    readings = [(48, 10.0), (36, 30.0), (24, 2.0), (12, 20.0), (0, 40.0)]  # reset, then above the first again
    CreditLog.objects.bulk_create(
        [CreditLog(key=key, timestamp=NOW - timedelta(hours=h), usage=u) for h, u in readings]
    )
    # 20 before the reset, 2 at it, 18 + 20 after: 60 over two days.
    assert CreditLog.objects.burn_rate(key, NOW, 7) == pytest.approx(30.0)
    assert CreditLog.objects.burn_rate(key, NOW, 1) == pytest.approx(38.0)


@pytest.mark.django_db
def test_a_key_without_readings_has_no_burn_rate():
    key = ApiKey.objects.create(hash="e" * 64, name="Empty")
    CreditLog.objects.create(key=key, timestamp=NOW, ok=False, error="OpenRouter API error (502)")
    assert CreditLog.objects.burn_rate(key, NOW, 7) is None
    assert CreditLog.objects.burn_rate(None, NOW, 7) is None


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["day", "week"])
def test_the_daily_rows_give_the_same_buckets_as_the_raw_log(settings, kind):
    settings.CREDITMON_TIME_ZONE = "America/New_York"  # days that are not UTC days, a DST change inside
    from zoneinfo import ZoneInfo

    from monitoring.models import DailyFigure

    tz = ZoneInfo(settings.CREDITMON_TIME_ZONE)
    rng = random.Random(7)
    keys = [ApiKey.objects.create(hash=f"{n:064d}", name=f"k{n}") for n in range(5)]
    for key in keys:
        CreditLog.objects.bulk_create(random_series(rng, key))
    DailyFigure.objects.refresh()
    for key in keys[:2]:  # checks logged after the fold: the next refresh folds only them
        CreditLog.objects.create(key=key, timestamp=NOW + timedelta(hours=5), usage=999.0, account_balance=1.0)
    DailyFigure.objects.refresh()

    def raw(rows):
        return [{k: b[k] for k in ("bucket", "last_id", "low", "high")} for b in rows]

    for key in keys:
        expected = raw(CreditLog.objects.successful().for_key(key).buckets(kind, tz))
        assert DailyFigure.objects.filter(key=key).buckets(kind, tz) == expected
    account = CreditLog.objects.successful().filter(account_balance__isnull=False).buckets(kind, tz)
    got = DailyFigure.objects.buckets(kind, tz, account=True)
    assert [(b["bucket"], b["last_id"]) for b in got] == [(b["bucket"], b["last_id"]) for b in account]
    assert len(got) > 3  # buckets were compared, not two empty lists


@pytest.mark.django_db
@pytest.mark.parametrize("resolution", ["hour", "day"])
def test_history_from_the_hourly_rows_equals_the_raw_log(resolution):
    from monitoring.api import history_points
    from monitoring.models import HourlyFigure, hourly_aggregates

    rng = random.Random(11)
    keys = [ApiKey.objects.create(hash=f"{n:064d}", name=f"k{n}") for n in range(4)]
    for key in keys:
        CreditLog.objects.bulk_create(random_series(rng, key))
    HourlyFigure.objects.refresh()
    for key in keys[:2]:  # checks logged after the fold, one failed: the next refresh folds only them
        CreditLog.objects.create(key=key, timestamp=NOW - timedelta(minutes=7), usage=999.0, remaining=-1.0)
        CreditLog.objects.create(key=key, timestamp=NOW - timedelta(minutes=3), ok=False, error="x")
        # and into a whole day already folded: its stored hour and its stored UTC day both take the delta
        CreditLog.objects.create(key=key, timestamp=NOW - timedelta(days=10, minutes=1), usage=0.5, remaining=7.0)
    start, end = NOW - timedelta(days=20, minutes=17), NOW - timedelta(minutes=1)  # partial hours at both ends
    got = history_points(start, end, resolution, keys)

    raw = CreditLog.objects.filter(timestamp__gte=start, timestamp__lte=end, key__in=keys)
    expected: dict[int, dict] = {key.pk: {} for key in keys}
    for row in sorted(hourly_aggregates(raw), key=lambda r: r["hour"]):
        bucket = row["hour"] if resolution == "hour" else row["hour"].replace(hour=0)
        point = expected[row["key_id"]].setdefault(bucket, {"checks": 0, "failures": 0, "usage": None,
                                                            "remaining": None, "limit": None,
                                                            "account_balance": None, "last_check": None})  # fmt: skip
        point["checks"] += row["checks"]
        point["failures"] += row["failures"]
        for name, column, pick in (("usage", "usage_max", max), ("remaining", "remaining_min", min),
                                   ("limit", "limit_max", max), ("account_balance", "balance_min", min)):  # fmt: skip
            known = [v for v in (point[name], row[column]) if v is not None]
            point[name] = pick(known) if known else None
        point["last_check"] = max(filter(None, [point["last_check"], row["last_at"].isoformat()]))
    for key in keys:
        want = [{"t": bucket.isoformat(), **point} for bucket, point in sorted(expected[key.pk].items())]
        assert got[key.pk] == want
    assert sum(len(p) for p in got.values()) > 20
    assert sum(p["failures"] for points in got.values() for p in points) > 0
