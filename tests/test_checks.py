"""Configuration mistakes surface as system checks with a hint."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def run_checks():
    from django.core import checks

    return {m.id: m for m in checks.run_checks()}


def test_a_missing_key_is_a_warning_with_a_hint(settings):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.CREDITMON_DEMO = False
    found = run_checks()
    assert "monitoring.W001" in found and ".env" in found["monitoring.W001"].hint


def test_a_threshold_below_the_minimum_is_flagged(settings):
    settings.OPENROUTER_CREDIT_THRESHOLD = 5.0
    settings.OPENROUTER_MIN_BALANCE = 5.0
    assert "monitoring.W002" in run_checks()


def test_swapped_forecast_horizons_are_flagged(settings):
    settings.FORECAST_WARNING_DAYS, settings.FORECAST_CRITICAL_DAYS = 2, 7
    assert "monitoring.W003" in run_checks()


def test_a_good_configuration_has_no_monitoring_warnings(settings):
    settings.OPENROUTER_API_KEY = "sk-or-v1-configured"
    found = run_checks()
    assert not [i for i in found if i.startswith("monitoring.")]


def test_check_fails_loudly_at_the_warning_level(settings):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    with pytest.raises(SystemCheckError):
        call_command("check", fail_level="WARNING")
