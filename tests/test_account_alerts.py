"""The account-wide alerts through the monitoring loop: key limit, budget, expiry, model spike, missed top-up."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone

from monitoring import forecast, status
from monitoring.alerts import account_conditions, budget_condition, key_conditions, model_spike_conditions
from monitoring.models import Alert, AlertEvent, ApiKey, Level
from monitoring.monitor import check_all, run_monitor
from monitoring.openrouter import key_hash
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY, iso
from monitoring.status import month_to_date_spend


@pytest.fixture
def loop(sim, settings, webhook_receiver):
    """The monitor with a management key, pointed at the simulator, notifying the webhook receiver."""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    settings.OPENROUTER_CREDIT_THRESHOLD = 10.0
    settings.MONTHLY_BUDGET = 0.0
    settings.KEY_LIMIT_WARNING_PERCENT = 80
    settings.KEY_LIMIT_CRITICAL_PERCENT = 95
    settings.KEY_EXPIRY_WARNING_DAYS = 7
    settings.SPIKE_FACTOR = 3.0
    settings.SPIKE_MIN_USD = 5.0
    settings.CREDITMON_TIME_ZONE = "UTC"
    return sim


class Clock:
    """Run times a few minutes apart, starting now: the simulator's activity days are real UTC days."""

    def __init__(self):
        self.now = timezone.now()

    def run(self, minutes: float = 5):
        self.now += timedelta(minutes=minutes)
        return run_monitor(now=self.now)


@pytest.fixture
def clock():
    return Clock()


def kinds(condition: str, subject: str | None = None) -> list[str]:
    events = AlertEvent.objects.filter(alert__condition=condition).order_by("created", "id")
    if subject is not None:
        events = events.filter(alert__subject=subject)
    return list(events.values_list("kind", flat=True))


def open_alert(condition: str, **filters) -> Alert:
    return Alert.objects.open().get(condition=condition, **filters)


def served(sim, day=None) -> list[dict]:
    params = {"date": day.isoformat()} if day else {}
    response = requests.get(
        f"{sim.url}/activity", params=params, headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"}, timeout=5
    )
    return response.json()["data"]


def test_a_key_nearly_at_its_limit_opens_escalates_and_resolves(loop, clock, webhook_receiver, db):
    clock.run()  # Production: 54.77 of its 100.00 used
    assert kinds(Alert.KEY_LIMIT) == []

    loop.set_key(PROD_KEY, usage=85.0)
    clock.run()
    alert = open_alert(Alert.KEY_LIMIT)
    assert (alert.key.hash, alert.level, alert.value) == (key_hash(PROD_KEY), Level.WARNING, pytest.approx(85.0))
    assert "used 85% of its $100.00 limit" in alert.message

    loop.set_key(PROD_KEY, usage=96.0)
    clock.run()
    assert open_alert(Alert.KEY_LIMIT).level == Level.CRITICAL

    loop.set_key(PROD_KEY, usage=40.0)
    clock.run()
    assert not Alert.objects.open().filter(condition=Alert.KEY_LIMIT).exists()
    assert kinds(Alert.KEY_LIMIT) == [AlertEvent.OPENED, AlertEvent.ESCALATED, AlertEvent.RESOLVED]
    titles = [r["body"]["title"] for r in webhook_receiver.received if "Key limit" in r["body"]["title"]]
    assert titles == [
        "[WARNING] Production Key: Key limit nearly used",
        "[CRITICAL] Production Key: Key limit nearly used",
        "[RESOLVED] Production Key: Key limit nearly used",
    ]


def test_the_limit_counts_within_its_window(loop, db):
    loop.set_scenario("monthly")  # 180 used all-time, but 12.50 of 50.00 this month
    statuses = check_all(now=timezone.now())
    prod = next(s for s in statuses if s.key.hash == key_hash(PROD_KEY))
    limit = next(c for c in key_conditions(prod, timezone.now(), {}) if c.condition == Alert.KEY_LIMIT)

    assert (limit.level, limit.value) == (Level.OK, pytest.approx(25.0))
    assert "this month" in limit.message


def test_a_key_expiring_soon_opens_escalates_and_resolves(loop, clock, db):
    clock.run()
    assert kinds(Alert.EXPIRY) == []

    loop.set_key(DEV_KEY, expires_at=iso(clock.now + timedelta(days=3)))
    clock.run()
    alert = open_alert(Alert.EXPIRY)
    assert (alert.key.name, alert.level) == ("Dev Key", Level.WARNING)
    assert "Dev Key expires on" in alert.message

    loop.set_key(DEV_KEY, expires_at=iso(clock.now + timedelta(hours=12)))
    clock.run()
    assert open_alert(Alert.EXPIRY).level == Level.CRITICAL

    loop.set_key(DEV_KEY, expires_at=None)  # renewed
    clock.run()
    assert kinds(Alert.EXPIRY) == [AlertEvent.OPENED, AlertEvent.ESCALATED, AlertEvent.RESOLVED]
    assert ApiKey.objects.get(name="Dev Key").expires_at is None


def test_an_expired_key_is_critical(loop, db, settings):
    settings.OPENROUTER_LIST_DISABLED_KEYS = True
    loop.set_key(DEV_KEY, expires_at=iso(timezone.now() - timedelta(days=1)))
    statuses = check_all(now=timezone.now())
    expiry = [c for s in statuses for c in key_conditions(s, timezone.now(), {}) if c.condition == Alert.EXPIRY]

    dev = next(c for c in expiry if c.key.name == "Dev Key")
    assert dev.level == Level.CRITICAL
    assert "Dev Key expired on" in dev.message


def expected_month_to_date(sim, now: datetime) -> float:
    """Account spend this month before today, summed from what OpenRouter serves."""
    today = now.astimezone(UTC).date()
    return sum(r["usage"] for r in served(sim) if r["date"] >= today.replace(day=1).isoformat())


def test_a_projected_overspend_warns_and_spending_past_the_budget_is_critical(loop, clock, settings, db):
    settings.MONTHLY_BUDGET = 1e9
    clock.run()  # the backfill: month-to-date from activity, the rate from the last 7 days of it
    assert kinds(Alert.BUDGET) == []
    today = clock.now.astimezone(UTC).date()
    spent = expected_month_to_date(loop, clock.now)
    assert month_to_date_spend(clock.now) == pytest.approx(spent)
    week = [today - timedelta(days=n) for n in range(1, 8)]
    rate = sum(r["usage"] for r in served(loop) if r["date"] in {d.isoformat() for d in week}) / 7
    projected = forecast.projected_month_spend(spent, rate, clock.now, UTC)

    settings.MONTHLY_BUDGET = (spent + projected) / 2
    assert budget_condition(status.build(clock.now), clock.now).value == pytest.approx(projected, rel=1e-6)
    clock.run(minutes=0)
    alert = open_alert(Alert.BUDGET)
    assert (alert.key, alert.level) == (None, Level.WARNING)
    assert "Projected month-end spend" in alert.message

    loop.set_account(250.0, 190.5)  # $10 spent since the last check
    settings.MONTHLY_BUDGET = spent + 5.0
    clock.run()
    alert = open_alert(Alert.BUDGET)
    assert alert.level == Level.CRITICAL
    assert month_to_date_spend(clock.now) == pytest.approx(spent + 10.0)
    assert "Monthly budget exceeded" in alert.message

    settings.MONTHLY_BUDGET = 1e9
    clock.run()
    assert kinds(Alert.BUDGET) == [AlertEvent.OPENED, AlertEvent.ESCALATED, AlertEvent.RESOLVED]


def test_no_budget_means_no_budget_alert(loop, clock, db):
    clock.run()
    budget = [c for c in account_conditions(status.build(clock.now), clock.now) if c.condition == Alert.BUDGET]
    assert [(c.level, c.message) for c in budget] == [(Level.OK, "No monthly budget set")]


def daily_by_model(rows: list[dict]) -> dict[str, dict[str, float]]:
    spend: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        spend[row["model"]][row["date"]] += row["usage"]
    return spend


def test_a_model_spending_far_above_its_average_opens_and_resolves(loop, clock, settings, db):
    settings.SPIKE_FACTOR = 1.0  # the simulator's days vary by model; any clear rise counts here
    clock.run()
    assert Alert.objects.filter(condition=Alert.MODEL_SPIKE).count() == 0
    today = clock.now.astimezone(UTC).date()
    before = daily_by_model(served(loop))

    # Production's last days are revised far upwards; days older than 3 are final and are not re-read.
    loop.set_key(PROD_KEY, activity_per_day=5000.0)
    recent = [today - timedelta(days=n) for n in (1, 2, 3)]
    after = daily_by_model([row for day in recent for row in served(loop, day)])
    clock.run()

    yesterday = recent[0].isoformat()
    average_days = [(today - timedelta(days=n)).isoformat() for n in range(2, 9)]
    expected = set()
    for model in after:
        days = {**before[model], **after[model]}
        average = sum(days.get(d, 0.0) for d in average_days) / 7
        if days[yesterday] >= settings.SPIKE_MIN_USD and days[yesterday] > average:
            expected.add(model)
    assert expected  # at least one model jumped
    spiking = set(Alert.objects.open().filter(condition=Alert.MODEL_SPIKE).values_list("subject", flat=True))
    assert spiking == expected
    alert = Alert.objects.open().filter(condition=Alert.MODEL_SPIKE).first()
    assert alert.key is None
    assert alert.message.startswith(f"{alert.subject} spent $")
    assert alert.value == pytest.approx(after[alert.subject][yesterday])
    settings.SPIKE_FACTOR = 100.0  # the same figures against a far higher bar: no spike
    assert {c.level for c in model_spike_conditions(clock.now)} == {Level.OK}
    settings.SPIKE_FACTOR = 1.0
    settings.SPIKE_MIN_USD = max(after[m][yesterday] for m in after) + 1  # nor below the floor
    assert {c.level for c in model_spike_conditions(clock.now)} == {Level.OK}
    settings.SPIKE_MIN_USD = 5.0

    loop.set_key(PROD_KEY, activity_per_day=3.2)  # the revision settles back
    clock.run()
    assert not Alert.objects.open().filter(condition=Alert.MODEL_SPIKE).exists()
    for model in expected:
        assert kinds(Alert.MODEL_SPIKE, model) == [AlertEvent.OPENED, AlertEvent.RESOLVED]


def test_a_missed_auto_top_up_opens_after_three_falling_checks_and_resolves_on_a_purchase(loop, clock, db, settings):
    settings.AUTO_TOPUP_EXPECTED = True
    clock.run()  # balance 69.50
    loop.set_account(250.0, 241.0)  # 9.00: below the 10.00 threshold
    clock.run()
    loop.set_account(250.0, 242.0)
    clock.run()
    assert kinds(Alert.TOPUP_MISSED) == []  # two checks are not yet a pattern

    loop.set_account(250.0, 243.0)
    clock.run()
    alert = open_alert(Alert.TOPUP_MISSED)
    assert (alert.key, alert.level, alert.value) == (None, Level.WARNING, pytest.approx(7.0))
    assert "no credits were added" in alert.message

    loop.set_account(300.0, 243.0)  # the top-up arrived: 57.00
    clock.run()
    assert kinds(Alert.TOPUP_MISSED) == [AlertEvent.OPENED, AlertEvent.RESOLVED]


def test_a_purchase_below_the_threshold_is_not_a_missed_top_up(loop, clock, db, settings):
    settings.AUTO_TOPUP_EXPECTED = True
    loop.set_account(250.0, 241.0)
    clock.run()
    loop.set_account(255.0, 247.0)  # bought 5.00, balance still falls (9.00 -> 8.00)
    clock.run()
    loop.set_account(255.0, 248.0)
    clock.run()
    assert kinds(Alert.TOPUP_MISSED) == []


def test_no_missed_top_up_alert_when_auto_top_up_is_not_expected(loop, clock, db, settings):
    settings.AUTO_TOPUP_EXPECTED = False
    for used in (241.0, 242.0, 243.0, 244.0):
        loop.set_account(250.0, used)
        clock.run()
    assert kinds(Alert.TOPUP_MISSED) == []


@pytest.mark.django_db
def test_a_key_given_directly_gets_limit_and_expiry_alerts_without_a_management_key(sim):
    from monitoring.models import Alert
    from monitoring.monitor import run_monitor
    from monitoring.simulator import PROD_KEY

    soon = (timezone.now() + timedelta(days=3)).isoformat()
    sim.set_key(PROD_KEY, limit=100, limit_reset="monthly", usage_monthly=90, usage=400, expires_at=soon)
    run_monitor()
    conditions = set(Alert.objects.open().values_list("condition", flat=True))
    assert {Alert.KEY_LIMIT, Alert.EXPIRY} <= conditions
