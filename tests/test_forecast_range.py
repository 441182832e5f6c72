"""The exhaustion range: pure functions, plain values, no database."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from monitoring import forecast

MONDAY = date(2026, 11, 2)


def days(amounts: list[float], first: date = MONDAY) -> dict[date, float]:
    return {first + timedelta(days=n): amount for n, amount in enumerate(amounts)}


def test_spend_without_spread_gives_one_date_at_the_mean():
    now = datetime(2026, 11, 30, tzinfo=UTC)
    earliest, latest = forecast.exhaustion_range(30.0, days([3.0] * 28), now, UTC)
    assert earliest == latest
    assert abs((earliest - now).total_seconds() / 86400 - 10.0) <= 1 / 24


def test_the_range_brackets_the_point_estimate_and_the_pessimistic_end_comes_first():
    rng = random.Random(7)
    history = days([max(0.0, rng.gauss(4.0, 1.5)) for _ in range(28)])
    mean = sum(history.values()) / len(history)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    earliest, latest = forecast.exhaustion_range(40.0, history, now, UTC)
    point = now + timedelta(days=40.0 / mean)
    assert earliest < point - timedelta(hours=6)
    assert latest > point + timedelta(hours=6)


def test_less_history_gives_a_wider_range():
    rng = random.Random(3)
    amounts = [max(0.0, rng.gauss(5.0, 2.0)) for _ in range(28)]
    now = datetime(2026, 11, 30, tzinfo=UTC)
    long = forecast.exhaustion_range(50.0, days(amounts), now, UTC)
    short = forecast.exhaustion_range(50.0, days(amounts[-4:], MONDAY + timedelta(days=24)), now, UTC)
    assert short[1] - short[0] > long[1] - long[0]


def test_the_weekday_pattern_moves_the_date():
    # Weekdays $10, weekends nothing, four weeks: $15 left on a Saturday morning lasts until Tuesday noon,
    # not the Sunday evening that the flat $7.14/day mean would say.
    history = days([10.0 if (MONDAY + timedelta(days=n)).weekday() < 5 else 0.0 for n in range(28)])
    saturday = datetime(2026, 11, 28, tzinfo=UTC)
    earliest, latest = forecast.exhaustion_range(15.0, history, saturday, UTC)
    assert earliest == latest
    assert (earliest.strftime("%a"), earliest.hour) == ("Tue", 12)
    assert forecast.weekday_means(history)[5] == 0.0


def test_a_short_history_ignores_the_weekday_pattern():
    history = days([10.0, 10.0, 10.0, 10.0, 10.0, 0.0, 0.0])  # one week: not enough to call it a pattern
    means = forecast.weekday_means(history)
    assert set(means.values()) == {50.0 / 7}


def test_no_range_without_a_balance_or_enough_days():
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert forecast.exhaustion_range(None, days([3.0] * 10), now, UTC) is None
    assert forecast.exhaustion_range(10.0, days([3.0, 3.0]), now, UTC) is None
    assert forecast.exhaustion_range(0.0, days([3.0] * 5), now, UTC) == (now, now)


def test_nothing_spent_never_runs_out_within_the_horizon():
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert forecast.exhaustion_range(10.0, days([0.0] * 14), now, UTC, max_days=30) == (None, None)


def test_an_end_beyond_the_horizon_is_unknown_but_the_early_end_is_given():
    rng = random.Random(11)
    history = days([max(0.0, rng.gauss(1.0, 0.9)) for _ in range(5)])
    now = datetime(2026, 11, 30, tzinfo=UTC)
    earliest, latest = forecast.exhaustion_range(60.0, history, now, UTC, max_days=90)
    assert earliest is not None and latest is None


def test_the_warning_words():
    assert forecast.day_label(datetime(2026, 12, 3, 9, tzinfo=UTC), UTC) == "Thu 3 Dec"
