"""Burn rate and forecast: pure functions, no database, `now` passed in."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitoring import forecast

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def six_hourly(days: float, per_check: float, start_usage: float = 10.0, end: datetime = NOW):
    """Checks every 6 hours for `days`, usage rising `per_check` each time, ending at `end`."""
    count = int(days * 4) + 1
    return [(end - timedelta(hours=6 * (count - 1 - i)), start_usage + per_check * i) for i in range(count)]


def test_it_has_no_rate_with_zero_or_one_entry():
    assert forecast.burn_rate_per_day([], NOW) is None
    assert forecast.burn_rate_per_day([(NOW, 5.0)], NOW) is None


def test_it_has_a_rate_with_two_entries():
    samples = [(NOW - timedelta(days=1), 10.0), (NOW, 13.0)]
    assert forecast.burn_rate_per_day(samples, NOW) == pytest.approx(3.0)


def test_two_entries_at_the_same_instant_give_no_rate():
    assert forecast.burn_rate_per_day([(NOW, 1.0), (NOW, 2.0)], NOW) is None


def test_eight_days_of_six_hourly_checks_give_the_seed_figures():
    samples = six_hourly(8, 0.80)
    rate = forecast.burn_rate_per_day(samples, NOW, 7)
    assert f"${rate:.2f}/day" == "$3.20/day"
    days = forecast.days_until_exhaustion(45.23, rate)
    assert f"{days:.1f}" == "14.1"


def test_flat_usage_gives_a_zero_rate_and_no_exhaustion():
    samples = six_hourly(3, 0.0)
    assert forecast.burn_rate_per_day(samples, NOW) == 0.0
    assert forecast.days_until_exhaustion(50.0, 0.0) is None


def test_a_top_up_does_not_change_the_rate():
    # A top-up raises the balance, never the cumulative usage: the samples are the same.
    plain = six_hourly(8, 0.80)
    assert forecast.burn_rate_per_day(plain, NOW) == pytest.approx(3.20)


def test_a_key_reset_does_not_produce_a_negative_or_distorted_rate():
    samples = six_hourly(8, 0.80)
    reset_at = len(samples) // 2
    # usage falls back to zero at the reset, then keeps growing 0.80 per check from there
    reset = samples[:reset_at] + [(when, 0.80 * (i + 1)) for i, (when, _) in enumerate(samples[reset_at:])]
    rate = forecast.burn_rate_per_day(reset, NOW, 7)
    assert rate == pytest.approx(3.20)


def test_uneven_spacing_is_weighted_by_time():
    samples = [
        (NOW - timedelta(days=4), 0.0),
        (NOW - timedelta(days=3, hours=23), 0.5),
        (NOW - timedelta(days=1), 3.0),
        (NOW, 4.0),
    ]
    assert forecast.burn_rate_per_day(samples, NOW) == pytest.approx(1.0)


def test_the_window_ignores_older_entries():
    old_spending = [(NOW - timedelta(days=20), 0.0), (NOW - timedelta(days=10), 100.0)]
    recent = six_hourly(2, 0.25, start_usage=100.0)
    assert forecast.burn_rate_per_day(old_spending + recent, NOW, 7) == pytest.approx(1.0)


def test_entries_without_usage_are_ignored():
    samples = [(NOW - timedelta(days=1), 1.0), (NOW - timedelta(hours=12), None), (NOW, 3.0)]
    assert forecast.burn_rate_per_day(samples, NOW) == pytest.approx(2.0)


def test_days_until_exhaustion_edge_cases():
    assert forecast.days_until_exhaustion(None, 3.0) is None
    assert forecast.days_until_exhaustion(10.0, None) is None
    assert forecast.days_until_exhaustion(0.0, 3.0) == 0.0
    assert forecast.days_until_exhaustion(-2.0, 3.0) == 0.0
    assert forecast.days_until_exhaustion(30.0, 3.0) == pytest.approx(10.0)


def test_exhaustion_date_is_now_plus_days_left():
    assert forecast.exhaustion_date(NOW, 2.5) == NOW + timedelta(days=2, hours=12)
    assert forecast.exhaustion_date(NOW, None) is None


def test_daily_spend_buckets_by_local_day():
    samples = [
        (datetime(2026, 11, 24, 22, 0, tzinfo=UTC), 0.0),
        (datetime(2026, 11, 24, 23, 30, tzinfo=UTC), 1.0),
        (datetime(2026, 11, 25, 1, 0, tzinfo=UTC), 3.0),
    ]
    utc = forecast.daily_spend(samples, UTC)
    assert utc == {datetime(2026, 11, 24).date(): 1.0, datetime(2026, 11, 25).date(): 2.0}
    berlin = forecast.daily_spend(samples, ZoneInfo("Europe/Berlin"))  # UTC+1: both land on the 25th
    assert berlin == {datetime(2026, 11, 25).date(): 3.0}


def test_spike_needs_both_the_factor_and_the_floor():
    assert forecast.is_spike(today=20.0, average_per_day=3.0, factor=3.0, floor=5.0)
    assert not forecast.is_spike(today=8.0, average_per_day=3.0, factor=3.0, floor=5.0)
    assert not forecast.is_spike(today=4.0, average_per_day=0.5, factor=3.0, floor=5.0)
    assert not forecast.is_spike(today=20.0, average_per_day=None, factor=3.0, floor=5.0)


def test_projected_month_spend_adds_the_rate_over_the_days_left():
    now = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # 10 days left in November
    assert forecast.projected_month_spend(40.0, 2.0, now, UTC) == pytest.approx(60.0)
    assert forecast.projected_month_spend(40.0, None, now, UTC) is None


def test_topups_are_rises_of_the_purchased_total():
    series = [(NOW - timedelta(days=3), 100.0), (NOW - timedelta(days=2), 100.0), (NOW - timedelta(days=1), 150.0)]
    assert forecast.topups(series) == [(NOW - timedelta(days=1), 50.0)]


def test_forecast_line_reaches_zero_at_exhaustion():
    line = forecast.forecast_line(NOW, 30.0, 3.0)
    assert line == [(NOW, 30.0), (NOW + timedelta(days=10), 0.0)]
    assert forecast.forecast_line(NOW, 30.0, 0.0) == []


def test_a_rate_of_a_fraction_of_a_cent_is_no_forecast_rather_than_a_date_out_of_range():
    """Found by the invariants: a key spending 7e-143 $/day ran out "in 1e142 days", past any datetime."""
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert forecast.days_until_exhaustion(1.0, 7.2e-143) is None
    assert forecast.days_until_exhaustion(1.0, 1.0 / forecast.HORIZON_DAYS) == pytest.approx(forecast.HORIZON_DAYS)
    assert forecast.exhaustion_date(now, 1e300) is None
    lifetime = forecast.layer_forecast(1.0, 0.0, 1e-300, now, None)
    assert (lifetime.days_left, lifetime.blocks_at) == (None, None)
    monthly = forecast.layer_forecast(1.0, 0.0, 1e-300, now, now + timedelta(days=20))
    assert monthly.holds and monthly.blocks_at is None
