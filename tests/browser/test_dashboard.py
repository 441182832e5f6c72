"""The dashboard in a real headless Chromium: figures, charts drawn, Check now, actions, screenshots."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import channelmask, demo, status
from monitoring.models import Activity, Alert, ApiKey, CreditLog, Level
from tests.qworker import run_queued
from tests.test_pages import make_key, seed

from .conftest import OVERFLOW_JS, points, screenshot, series

pytestmark = pytest.mark.browser


MODELS = [("openai/gpt-4.1", 3.0), ("anthropic/claude-sonnet-4", 2.5), ("google/gemini-2.5-flash", 1.0)]


def seed_activity(keys, days=10):
    today = timezone.now().date()
    rows = []
    for back in range(1, days + 1):
        day = today - timedelta(days=back)
        for model, spend in MODELS:
            rows.append(Activity(date=day, api_key_hash="", model=model, endpoint_id=model, usage=spend))
        for key, spend in keys:
            rows.append(Activity(date=day, api_key_hash=key.hash, model="openai/gpt-4.1", endpoint_id="e", usage=spend))
    Activity.objects.bulk_create(rows)


@pytest.fixture
def demo_month(quiet):
    """The demo's month made by the real job, its deliveries to a local inbox that NOTIFY_URLS names."""
    with demo.inbox() as channel:
        quiet.NOTIFY_URLS = channel
        demo.seed(timezone.now(), notify_url=channel)
        yield channel


def test_demo_data_on_every_page(login, quiet, demo_month, console_errors):
    quiet.CREDITMON_DEMO = True
    quiet.MONTHLY_BUDGET = 150.0
    prod = ApiKey.objects.get(is_primary=True)
    dev = ApiKey.objects.get(is_primary=False)
    found = status.build(timezone.now())
    figures = found.for_key(prod)
    remaining = status.money(figures.remaining)

    page = login("/health/")
    assert page.get_by_text("Demo mode.").is_visible()
    card = page.locator(".key-card").first
    assert "Production Key" in card.inner_text()
    assert remaining in card.inner_text()
    used = f"{status.money(figures.used_in_limit)} / {status.money(figures.success.credit_limit)}"
    assert used in card.inner_text()
    assert page.locator("#account-balance").inner_text().startswith(status.money(found.account.balance))
    screenshot(page, "health-demo")

    page = login("/financial/")
    assert page.locator("#fig-remaining").inner_text() == remaining
    assert page.locator("#fig-burn-rates dd").count() == 3
    assert points(page, "spend-chart") == 30
    assert points(page, "balance-chart") == 30
    assert points(page, "balance-chart", 1) == 2  # the forecast: now and exhaustion
    assert points(page, "balance-chart", 2) == 1  # the top-up twelve days ago
    assert points(page, "account-chart") == 30
    assert points(page, "account-chart", 1) == 1
    assert len(series(page, "model-chart")) >= 3  # the models the simulated activity served, synced by the job
    assert points(page, "model-chart") == 30
    assert series(page, "key-chart") == ["Production Key", "Dev Key"]
    assert page.locator("#model-drivers tbody tr").first.inner_text().split("\t")[0] in series(page, "model-chart")
    assert page.locator("#fig-budget").inner_text() == "$150.00"
    screenshot(page, "financial-demo")

    page.get_by_role("link", name="7 days").click()
    page.wait_for_url("**range=7")
    assert points(page, "spend-chart") == 7
    page.get_by_label("Key", exact=True).select_option(label="Dev Key")
    page.wait_for_url(f"**key={dev.pk}&range=7")
    assert "Dev Key" in page.locator("h1 + p").inner_text()
    assert points(page, "spend-chart") == 7
    screenshot(page, "financial-dev-key-7-days")

    page = login("/alerts/")
    assert page.locator("#key-states tbody tr").count() == 2
    assert "$10.00" in page.locator("#thresholds").inner_text()
    # The demo's open alert: acknowledged, un-acknowledged, snoozed, un-snoozed; its deliveries in the history.
    spike = page.locator(".alert-row", has_text="Spend spike")
    assert "WARNING" in spike.inner_text()
    shown = channelmask.mask_url(demo_month)  # as every person sees a channel: its secret-sized path masked
    assert shown in page.locator("#event-history").inner_text() and "/demo-inbox" not in page.content()
    assert shown in page.get_by_text("Notification channels:").inner_text()  # the channel is listed
    # The past alert, resolved by the top-up: its history rows, their deliveries to that channel.
    past = page.locator("#event-history tbody tr", has_text="Key limit nearly used")
    assert past.filter(has_text=re.compile("resolved", re.I)).count() == 1
    assert shown in past.filter(has_text=re.compile("escalated", re.I)).first.inner_text()
    screenshot(page, "alerts-demo-with-the-past-alert")
    spike.get_by_role("button", name="Acknowledge").click()
    assert "Acknowledged: Spent" in page.locator(".message-warning").inner_text()  # the card's level, WARNING
    assert "is-acknowledged" in spike.get_attribute("class") and spike.locator("[data-state=acknowledged]").is_visible()
    spike.get_by_role("button", name="Un-acknowledge").click()
    assert "Acknowledgement withdrawn" in page.locator(".message-warning").inner_text()
    spike.get_by_label("Snooze for").select_option(label="8 hours")
    spike.get_by_role("button", name="Snooze").click()
    assert "is-snoozed" in spike.get_attribute("class") and spike.locator("[data-state=snoozed]").is_visible()
    screenshot(page, "alerts-demo-snoozed")
    spike.get_by_role("button", name="Un-snooze").click()
    assert "Snooze ended" in page.locator(".message-warning").inner_text()
    assert "is-snoozed" not in spike.get_attribute("class")
    kinds = page.locator("#event-history tbody tr td:nth-child(2)").all_inner_texts()
    assert [k.split(" by ")[0] for k in kinds[:4]] == [
        "snooze ended", "snoozed", "acknowledgement withdrawn", "acknowledged"
    ]  # fmt: skip
    screenshot(page, "alerts-demo")
    assert console_errors == []


def test_check_now_over_the_simulator(login, sim, console_errors):
    page = login("/health/")
    assert "No data yet" in page.locator("#state-no-data").inner_text()
    screenshot(page, "health-empty")
    page.get_by_role("button", name="Check now").click()
    assert "waiting for the worker" in page.locator("#check-pending").inner_text()
    run_queued()  # the worker's part; the page reloads itself until the result is in
    page.wait_for_selector(".message-success")
    assert "Credits OK" in page.locator(".message-success").inner_text()
    assert CreditLog.objects.count() == 1
    assert "$45.23" in page.locator(".key-card").inner_text()
    assert "unknown (need readings over at least 1 hour)" in page.locator(".key-card").inner_text()
    assert "never" not in page.locator(".last-ok").inner_text()
    screenshot(page, "health-after-check-now")

    page = login("/financial/")
    assert page.get_by_text("Burn rate unknown (need readings over at least 1 hour)").is_visible()
    assert points(page, "balance-chart") == 1
    screenshot(page, "financial-one-entry")
    assert console_errors == []


@pytest.mark.parametrize(
    "scenario, level, text",
    [
        ("low", "WARNING", "Credits low: $4.50 remaining"),
        ("exhausted", "CRITICAL", "Credits exhausted"),
        ("uncapped", "UNKNOWN", "Balance unknown"),
        ("http502", "UNKNOWN", "OpenRouter is having trouble"),
    ],
)
def test_scenarios_show_their_level_and_what_to_do(login, sim, console_errors, scenario, level, text):
    sim.set_scenario(scenario)
    page = login("/health/")
    page.get_by_role("button", name="Check now").click()
    page.wait_for_selector("#check-pending")
    run_queued()
    page.wait_for_selector(".messages")
    assert level in page.locator(".key-card .badge").first.inner_text()
    assert text in page.locator("main").inner_text()
    screenshot(page, f"health-{scenario}")
    page = login("/alerts/")
    assert level in page.locator("#key-states tbody tr").first.inner_text()
    assert console_errors == []


def test_alerts_can_be_acknowledged_snoozed_and_tested(login, quiet, webhook_receiver, console_errors):
    quiet.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    key = make_key()
    seed(key, 4, usage=92.0)
    low = Alert.objects.create(key=key, condition=Alert.BALANCE, level=Level.WARNING, message="Credits low: $6.50")
    failing = Alert.objects.create(key=key, condition=Alert.FAILURES, level=Level.CRITICAL, message="3 checks failed")

    page = login("/alerts/")
    page.locator(f"#alert-{low.pk}").get_by_role("button", name="Acknowledge").click()
    assert "Acknowledged: Credits low: $6.50" in page.locator(".message-warning").inner_text()  # a WARNING card
    page.locator(f"#alert-{failing.pk}").get_by_label("Snooze for").select_option(label="24 hours")
    page.locator(f"#alert-{failing.pk}").get_by_role("button", name="Snooze").click()
    assert "Snoozed for 24 hours" in page.locator(".message-error").inner_text()  # a CRITICAL card
    page.get_by_role("button", name="Send test notification").click()
    assert "Test notification sent to 1 channel" in page.locator(".message-success").inner_text()
    assert len(webhook_receiver.received) == 1
    history = page.locator("#event-history tbody tr")
    assert history.count() == 3
    assert "test notification" in history.first.inner_text()  # newest first
    assert "sent" in history.first.inner_text()
    low.refresh_from_db()
    failing.refresh_from_db()
    assert low.acknowledged_by == "alice" and failing.snoozed_until is not None
    screenshot(page, "alerts-after-actions")
    assert console_errors == []


def test_pages_read_well_on_a_phone(login, quiet, console_errors):
    demo.seed(timezone.now(), days=14)  # a shorter month: the layout is what this test reads
    page = login("/health/")
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in [("/health/", "health-phone"), ("/financial/", "financial-phone"), ("/alerts/", "alerts-phone")]:
        page = login(path)
        assert page.evaluate(OVERFLOW_JS) == [], f"{path} needs sideways scrolling on a phone"
        screenshot(page, name)
        if path == "/financial/":
            assert points(page, "spend-chart") == 15  # the 14 days and today
    assert console_errors == []


def test_a_failed_check_and_no_key_say_what_to_do(login, quiet, console_errors):
    key = make_key()
    seed(key, 3, end=timezone.now() - timedelta(hours=2))
    CreditLog.objects.create(key=key, ok=False, error="OpenRouter API error (401): invalid key", http_status=401)
    page = login("/health/")
    assert "create a new one at https://openrouter.ai/keys" in page.locator("#state-last-failed").inner_text()
    screenshot(page, "health-failed")
    quiet.OPENROUTER_API_KEY = ""
    CreditLog.objects.all().delete()
    ApiKey.objects.all().delete()
    page = login("/financial/")
    assert "OPENROUTER_API_KEY not set" in page.locator("#state-not-configured").inner_text()
    screenshot(page, "financial-not-configured")
    assert console_errors == []
