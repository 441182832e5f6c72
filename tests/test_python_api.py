"""The seed's programmatic API in Python spelling, over real HTTP to the simulator."""

from datetime import timedelta
from io import StringIO

import pytest
from django.utils import timezone

from monitoring import monitor
from monitoring.models import ApiKey, CreditLog
from monitoring.openrouter import key_hash
from monitoring.simulator import PROD_KEY

pytestmark = pytest.mark.django_db


def seed(days=8, per_check=0.8, usage_now=54.77):
    key = ApiKey.objects.create(hash=key_hash(PROD_KEY), name="Production Key", is_primary=True)
    now = timezone.now()
    CreditLog.objects.bulk_create(
        CreditLog(key=key, timestamp=now - timedelta(hours=6 * k), usage=usage_now - per_check * k)
        for k in range(1, days * 4 + 1)
    )
    return key


def test_check_credits_returns_the_key_figures_without_logging(sim):
    info = monitor.check_credits()
    assert (info.usage, info.limit, info.limit_remaining) == (54.77, 100.0, 45.23)
    assert CreditLog.objects.count() == 0


def test_get_remaining_credits_takes_the_tighter_figure(sim):
    from monitoring.openrouter import AccountCredits

    info = monitor.check_credits()
    assert monitor.get_remaining_credits(info) == 45.23
    assert monitor.get_remaining_credits(info, AccountCredits(100.0, 90.0)) == 10.0


def test_check_threshold_levels(settings):
    settings.OPENROUTER_MIN_BALANCE = 0.0
    assert monitor.check_threshold(45.23, 10.0) is None
    assert monitor.check_threshold(4.5, 10.0)["level"] == "warning"
    assert monitor.check_threshold(0.0, 10.0)["level"] == "critical"
    assert "threshold $10.00" in monitor.check_threshold(4.5, 10.0)["message"]


def test_monitor_credits_returns_what_the_seed_documents(sim):
    seed()
    status = monitor.monitor_credits(threshold=10.0)
    assert status["remaining"] == 45.23
    assert status["alert"] is None
    assert status["burn_rate"] == pytest.approx(3.20, abs=0.01)
    assert round(status["days_left"], 1) == 14.1
    assert status["key_info"]["key"] == "Production Key"
    assert CreditLog.objects.filter(ok=True).count() == 33


def test_monitor_credits_reports_an_alert_below_the_threshold(sim):
    sim.set_scenario("low")
    status = monitor.monitor_credits(threshold=10.0)
    assert status["alert"] == {"level": "warning", "message": "Credits low: $4.50 remaining (threshold $10.00)"}


def test_display_credits_prints_the_report(sim):
    out = StringIO()
    status = monitor.display_credits(threshold=10.0, verbose=True, stdout=out)
    assert "Balance: $45.23 remaining" in out.getvalue()
    assert status["remaining"] == 45.23


def test_burn_rate_days_left_and_history_from_the_log(sim):
    seed()
    assert monitor.get_daily_burn_rate(7) == pytest.approx(3.20)
    assert round(monitor.get_days_until_exhaustion(45.23, 7), 1) == 14.1
    history = monitor.get_credit_history(2.9)
    assert len(history) == 11 and history[0].timestamp < history[-1].timestamp
