"""The words beside the figures agree with the product: a 401 is critical at once, a failed check is not "no
limit", a short window says the span it used, a projection never spends money that is not there, no share of $0."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import dashboard, forecast
from monitoring.models import CreditLog
from tests.test_pages import make_key, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, django_user_model, settings):
    settings.OPENROUTER_API_KEY = "sk-or-v1-test"
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.CREDITMON_TIME_ZONE = "UTC"
    settings.BURN_RATE_WINDOW_DAYS = 7
    settings.FAILURES_BEFORE_UNKNOWN = 3
    client.force_login(django_user_model.objects.create_user("alice", password="correct horse battery staple"))
    return client


def rejected(key, status=401):
    return CreditLog.objects.create(
        key=key, ok=False, http_status=status, error=f"OpenRouter API error ({status}): the key is invalid or disabled"
    )


def test_a_rejected_key_is_not_said_to_wait_for_more_failures(logged_in):
    key = make_key()
    rejected(key)
    page = logged_in.get("/alerts/").text
    assert "of 3 failed checks" not in page
    assert "critical at once" in page


def test_a_failed_first_check_is_not_explained_as_a_key_without_limit(logged_in):
    key = make_key()
    rejected(key)
    response = logged_in.get("/financial/")
    assert response.status_code == 200
    assert "has no limit" not in response.text
    assert "no successful check yet: OpenRouter API error (401)" in response.text
    assert 'id="state-check-failed"' in response.text  # the newest check's failure is shown, not hidden


def test_a_failed_check_after_successes_is_shown(logged_in):
    key = make_key()
    seed(key, 8)
    rejected(key, 402)
    text = logged_in.get("/financial/").text
    assert 'id="state-check-failed"' in text and "OpenRouter API error (402)" in text


def test_a_window_the_readings_do_not_fill_says_the_span_it_used(logged_in):
    key = make_key()
    seed(key, 30, step=timedelta(hours=6))  # the 24 h window holds readings over 18 hours only
    rates = logged_in.get("/financial/").context["key_data"]["rates"]
    day, week = rates[0], rates[1]
    assert day["label"] == "24 h" and day["span_text"] == "over the last 18.0 hours"
    assert week["span_text"] == ""  # 7 days of readings: the window's own average
    assert "(over the last 18.0 hours)" in logged_in.get("/financial/").text


def test_the_month_end_projection_never_spends_more_than_is_left(logged_in):
    key = make_key()
    seed(key, 12, usage=98.0, spend=0.15, limit=100.0, account=False)  # $0.35 left at $0.60/day
    response = logged_in.get("/financial/")
    k = response.context["key_data"]
    now = timezone.now()
    _, month_end = forecast.month_bounds(now, dashboard.reporting_tz())
    assert k["projected_month"] <= k["month_to_date"] + k["remaining"] + 0.01
    assert k["runs_out_this_month"] == (now + timedelta(days=k["days_left"]) < month_end)
    if k["runs_out_this_month"]:
        assert "runs out before month end" in response.text


def test_no_share_of_nothing():
    rows = dashboard.drivers([{"model": "a", "spend": 0.0, "calls": 3}, {"model": "b", "spend": 0.001}], "model", {})
    assert [r["share"] for r in rows] == [None, None]
    rows = dashboard.drivers([{"model": "a", "spend": 3.0}, {"model": "b", "spend": 1.0}], "model", {})
    assert [r["share"] for r in rows] == [75.0, 25.0]
