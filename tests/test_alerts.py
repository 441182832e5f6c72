"""The alert lifecycle over real HTTP: the simulated OpenRouter in, a real webhook receiver out."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from monitoring import alerts, tasks
from monitoring.models import Alert, AlertEvent, CreditLog, Delivery, Level
from monitoring.monitor import check_all
from monitoring.simulator import PROD_KEY

START = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)


@pytest.fixture
def loop(sim, settings, webhook_receiver):
    """The monitor pointed at the simulator, notifying the webhook receiver."""
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    settings.OPENROUTER_CREDIT_THRESHOLD = 10.0
    settings.OPENROUTER_MIN_BALANCE = 0.0
    settings.ALERT_HYSTERESIS = 0.05
    settings.REMIND_INTERVAL_HOURS = 24
    settings.FAILURES_BEFORE_UNKNOWN = 3
    settings.CHECK_INTERVAL_MINUTES = 360
    settings.OPENROUTER_MAX_RETRIES = 0
    return sim


@pytest.fixture
def balance_only(settings):
    """Only the balance condition can fire: the forecast and spike lines are out of reach."""
    settings.FORECAST_WARNING_DAYS = 0
    settings.FORECAST_CRITICAL_DAYS = 0
    settings.SPIKE_MIN_USD = 1e9


def run(sim, hours: float, remaining: float | None = None, limit: float = 100.0) -> str:
    """One scheduled run at START + hours, with the key's balance set first."""
    if remaining is not None:
        sim.set_key(PROD_KEY, limit=limit, usage=round(limit - remaining, 2), limit_remaining=None)
    return tasks.monitor_job(now=START + timedelta(hours=hours))


def titles(receiver) -> list[str]:
    return [r["body"]["title"] for r in receiver.received]


def balance_alert() -> Alert:
    return Alert.objects.get(condition=Alert.BALANCE)


@pytest.mark.django_db
@pytest.mark.usefixtures("balance_only")
class TestBalanceLifecycle:
    def test_a_falling_balance_notifies_once_per_transition(self, loop, webhook_receiver):
        run(loop, 0, remaining=50)
        run(loop, 6, remaining=8)
        run(loop, 12, remaining=6)
        run(loop, 18, remaining=5)
        run(loop, 24, remaining=0)
        run(loop, 30, remaining=0)
        run(loop, 36, remaining=100, limit=200)

        name = balance_alert().key.display_name
        assert titles(webhook_receiver) == [
            f"[WARNING] {name}: Balance low",
            f"[CRITICAL] {name}: Balance low",
            f"[RESOLVED] {name}: Balance low",
        ]
        kinds = list(AlertEvent.objects.order_by("created", "id").values_list("kind", flat=True))
        assert kinds == [AlertEvent.OPENED, AlertEvent.ESCALATED, AlertEvent.RESOLVED]
        assert Delivery.objects.filter(status=Delivery.SENT).count() == 3
        assert balance_alert().resolved_at == START + timedelta(hours=36)

    def test_the_message_gives_the_figures_and_what_to_do(self, loop, webhook_receiver, settings):
        run(loop, 0, remaining=20)
        run(loop, 6, remaining=8)

        body = webhook_receiver.received[0]["body"]["message"]
        assert "Credits low: $8.00 remaining (threshold $10.00)" in body
        assert "Balance: $8.00 remaining" in body
        assert "Burn Rate: $48.00/day (over the last" in body  # the span the readings really cover
        assert "Days Left: 0.2 days at current rate" in body
        assert settings.OPENROUTER_TOPUP_URL in body
        assert webhook_receiver.received[0]["body"]["type"] == "warning"

    def test_a_reminder_follows_after_the_interval(self, loop, webhook_receiver):
        run(loop, 0, remaining=8)
        run(loop, 6)
        run(loop, 23)
        assert len(webhook_receiver.received) == 1

        run(loop, 24)
        assert len(webhook_receiver.received) == 2
        assert titles(webhook_receiver)[1].startswith("[REMINDER WARNING]")
        assert "Still open since 2030-01-07 01:00 UTC" in webhook_receiver.received[1]["body"]["message"]

        run(loop, 30)
        assert len(webhook_receiver.received) == 2  # the next one is 24 h after the reminder

    def test_acknowledging_stops_reminders_not_escalations(self, loop, webhook_receiver, django_user_model):
        run(loop, 0, remaining=8)
        user = django_user_model.objects.create_user("ops")
        event = alerts.acknowledge(balance_alert(), user, now=START + timedelta(hours=1))

        run(loop, 6, remaining=0)  # the acknowledged WARNING becomes CRITICAL: people hear it again
        assert len(webhook_receiver.received) == 2
        assert titles(webhook_receiver)[1].startswith("[CRITICAL]")
        assert "Escalated from WARNING to CRITICAL" in webhook_receiver.received[1]["body"]["message"]
        run(loop, 48)  # still acknowledged: no reminder of the same level
        run(loop, 54, remaining=100, limit=200)

        assert len(webhook_receiver.received) == 2
        assert event.kind == AlertEvent.ACKNOWLEDGED and event.user == "ops"
        assert balance_alert().acknowledged_by == "ops"
        escalated = AlertEvent.objects.get(kind=AlertEvent.ESCALATED)
        resolved = AlertEvent.objects.get(kind=AlertEvent.RESOLVED)
        assert escalated.deliveries.get().status == "sent"
        assert not resolved.deliveries.exists()
        assert not AlertEvent.objects.filter(kind=AlertEvent.REMINDER).exists()

    def test_withdrawing_an_acknowledgement_brings_reminders_back(self, loop, webhook_receiver):
        run(loop, 0, remaining=8)
        alerts.acknowledge(balance_alert(), "ops", now=START + timedelta(hours=1))
        run(loop, 25)
        assert len(webhook_receiver.received) == 1
        event = alerts.unacknowledge(balance_alert(), "ops", now=START + timedelta(hours=26))
        assert event.kind == AlertEvent.UNACKNOWLEDGED and balance_alert().acknowledged_at is None
        assert alerts.unacknowledge(balance_alert(), "ops") is None  # nothing left to withdraw
        run(loop, 27)
        assert titles(webhook_receiver)[1].startswith("[REMINDER WARNING]")

    def test_notifications_link_back_to_the_alerts_page_and_the_keys_financial_page(
        self, loop, webhook_receiver, settings
    ):
        settings.SITE_URL = "https://creditmon.example.com"
        run(loop, 0, remaining=8)
        body = webhook_receiver.received[0]["body"]["message"]
        alert = balance_alert()
        assert f"Alerts: https://creditmon.example.com/alerts/#alert-{alert.pk}" in body
        assert f"Financial: https://creditmon.example.com/financial/?key={alert.key.pk}" in body

    def test_without_site_url_there_is_no_link(self, loop, webhook_receiver, settings):
        settings.SITE_URL = ""
        run(loop, 0, remaining=8)
        assert "https://creditmon" not in webhook_receiver.received[0]["body"]["message"]

    def test_acknowledging_twice_records_it_once(self, loop, django_user_model):
        run(loop, 0, remaining=8)
        user = django_user_model.objects.create_user("ops")
        assert alerts.acknowledge(balance_alert(), user) is not None
        assert alerts.acknowledge(balance_alert(), user) is None
        assert AlertEvent.objects.filter(kind=AlertEvent.ACKNOWLEDGED).count() == 1

    def test_a_resolved_alert_cannot_be_acknowledged_or_snoozed(self, loop):
        run(loop, 0, remaining=8)
        run(loop, 6, remaining=50)
        with pytest.raises(ValueError, match="already resolved"):
            alerts.acknowledge(balance_alert(), "ops")
        with pytest.raises(ValueError, match="already resolved"):
            alerts.snooze(balance_alert(), START + timedelta(days=9), "ops", now=START + timedelta(hours=7))

    def test_a_snoozed_alert_is_quiet_until_the_snooze_ends(self, loop, webhook_receiver):
        run(loop, 0, remaining=8)
        event = alerts.snooze(balance_alert(), START + timedelta(hours=26), "ops", now=START + timedelta(hours=1))

        run(loop, 6, remaining=0)  # a snooze, too, holds back reminders, not a worse level
        assert titles(webhook_receiver)[1].startswith("[CRITICAL]")
        run(loop, 24)
        assert len(webhook_receiver.received) == 2
        assert event.kind == AlertEvent.SNOOZED and event.user == "ops"
        assert "until 2030-01-08 03:00 UTC" in event.message

        run(loop, 30)  # snooze over, last notified 24 h ago: a reminder at the current level
        assert len(webhook_receiver.received) == 3
        assert titles(webhook_receiver)[2].startswith("[REMINDER CRITICAL]")

    def test_a_snooze_can_be_ended_early(self, loop, webhook_receiver):
        run(loop, 0, remaining=8)
        alerts.snooze(balance_alert(), START + timedelta(days=7), "ops", now=START + timedelta(hours=1))
        run(loop, 25)
        assert len(webhook_receiver.received) == 1
        event = alerts.unsnooze(balance_alert(), "ops", now=START + timedelta(hours=26))
        assert event.kind == AlertEvent.UNSNOOZED and balance_alert().snoozed_until is None
        run(loop, 27)
        assert titles(webhook_receiver)[1].startswith("[REMINDER WARNING]")

    def test_a_snooze_must_end_in_the_future(self, loop):
        run(loop, 0, remaining=8)
        with pytest.raises(ValueError, match="future"):
            alerts.snooze(balance_alert(), START - timedelta(hours=1), "ops", now=START)

    def test_a_balance_hovering_at_the_threshold_does_not_flap(self, loop, webhook_receiver):
        for hours, remaining in enumerate([9.9, 10.1, 9.95, 10.3, 9.8, 10.45]):
            run(loop, hours * 3, remaining=remaining)
        assert len(webhook_receiver.received) == 1
        assert balance_alert().is_open
        assert "not yet clear of the $10.00 line" in balance_alert().message

        run(loop, 18, remaining=10.6)  # clears the line by the 5% margin
        assert titles(webhook_receiver)[1].startswith("[RESOLVED]")
        assert len(webhook_receiver.received) == 2

    def test_a_critical_balance_eases_only_past_the_margin(self, loop, webhook_receiver):
        run(loop, 0, remaining=0)
        run(loop, 6, remaining=0.3)
        assert balance_alert().level == Level.CRITICAL

        run(loop, 12, remaining=0.6)
        assert balance_alert().level == Level.WARNING
        assert titles(webhook_receiver)[1].startswith("[WARNING]")
        assert "Eased from CRITICAL to WARNING" in webhook_receiver.received[1]["body"]["message"]


@pytest.mark.django_db
class TestFailingChecks:
    def test_three_failed_checks_open_one_unknown_alert(self, loop, webhook_receiver, balance_only):
        run(loop, 0, remaining=8)
        loop.set_failure("http500")
        run(loop, 6)
        run(loop, 12)
        assert not Alert.objects.filter(level=Level.UNKNOWN).exists()

        run(loop, 18)
        run(loop, 21)
        unknown = Alert.objects.get(level=Level.UNKNOWN)
        assert unknown.condition == Alert.FAILURES
        assert re.search(r"The last [34] checks failed: OpenRouter API error \(500\)", unknown.message)
        assert len(webhook_receiver.received) == 2
        assert titles(webhook_receiver)[1].endswith("Checks failing")
        assert titles(webhook_receiver)[1].startswith("[UNKNOWN]")

    def test_a_failed_check_leaves_the_balance_alert_alone(self, loop, balance_only):
        run(loop, 0, remaining=8)
        loop.set_failure("http500")
        run(loop, 6)
        alert = balance_alert()
        assert alert.is_open and alert.level == Level.WARNING
        assert AlertEvent.objects.count() == 1

    def test_the_unknown_alert_resolves_when_checks_succeed_again(self, loop, webhook_receiver, balance_only):
        run(loop, 0, remaining=50)
        loop.set_failure("http500")
        for hours in (6, 12, 18):
            run(loop, hours)
        loop.set_failure(None)
        run(loop, 24)
        assert not Alert.objects.open().exists()
        assert [t.split("]")[0] for t in titles(webhook_receiver)] == ["[UNKNOWN", "[RESOLVED"]

    def test_no_successful_check_within_two_intervals_is_stale(self, loop, settings, balance_only):
        settings.FAILURES_BEFORE_UNKNOWN = 10
        run(loop, 0, remaining=50)
        loop.set_failure("http500")
        run(loop, 6)
        run(loop, 12)
        assert not Alert.objects.exists()

        run(loop, 18)
        stale = Alert.objects.get()
        assert (stale.condition, stale.level) == (Alert.STALE, Level.UNKNOWN)
        assert "No successful check since 2030-01-07 01:00 UTC (18 h)" in stale.message


@pytest.mark.django_db
class TestForecastAndSpike:
    def test_days_left_below_the_horizon_opens_a_forecast_warning(self, loop, settings):
        settings.SPIKE_MIN_USD = 1e9
        run(loop, 0, remaining=50)
        run(loop, 24, remaining=40)  # $10/day, 4 days left
        alert = Alert.objects.get(condition=Alert.FORECAST)
        assert alert.level == Level.WARNING
        assert alert.message == "Runs out in 4.0 days at $10.00/day ($40.00 left)"
        assert not Alert.objects.filter(condition=Alert.BALANCE).exists()

    def test_days_left_below_the_critical_horizon_is_critical(self, loop, settings):
        settings.SPIKE_MIN_USD = 1e9
        run(loop, 0, remaining=50)
        run(loop, 24, remaining=30)  # $20/day, 1.5 days left
        assert Alert.objects.get(condition=Alert.FORECAST).level == Level.CRITICAL

    def test_todays_spend_far_above_the_average_is_a_spike(self, loop, settings):
        settings.FORECAST_WARNING_DAYS = 0
        settings.FORECAST_CRITICAL_DAYS = 0
        run(loop, 0, remaining=90)
        run(loop, 12, remaining=89)
        run(loop, 24, remaining=88)  # $2/day before today
        assert not Alert.objects.filter(condition=Alert.SPIKE).exists()

        run(loop, 36, remaining=70)
        spike = Alert.objects.get(condition=Alert.SPIKE)
        assert spike.level == Level.WARNING
        assert spike.message.startswith(
            "Spent $19.00 today, over 3x the $2.00/day average over the 12.0 hours before today (logged checks). "
            "Behind it: keys: "
        )
        assert "(100% of the rise); models: " in spike.message  # what drove it, with amounts


@pytest.mark.django_db
class TestHeartbeatAndLease:
    def test_a_successful_run_pings_the_heartbeat(self, loop, settings, webhook_receiver):
        settings.NOTIFY_URLS = ""
        settings.HEARTBEAT_URL = f"http://{webhook_receiver.url}/ping/abc"
        summary = run(loop, 0, remaining=50)
        assert summary.startswith("OK:")
        assert [r["path"] for r in webhook_receiver.received] == ["/ping/abc"]

    def test_a_blind_run_pings_the_failure_signal(self, loop, settings, webhook_receiver):
        settings.HEARTBEAT_URL = f"http://{webhook_receiver.url}/ping/abc"
        loop.set_failure("http500")
        summary = run(loop, 0)
        assert summary.startswith("UNKNOWN:")
        pings = [r["path"] for r in webhook_receiver.received if r["path"].startswith("/ping/")]
        assert pings == ["/ping/abc/fail"]

    def test_an_unreachable_heartbeat_is_logged_not_raised(self, loop, settings, caplog):
        settings.HEARTBEAT_URL = "http://127.0.0.1:9/ping/secret-uuid"
        summary = run(loop, 0, remaining=50)
        assert summary.startswith("OK:")
        assert "Heartbeat ping to 127.0.0.1:9 failed" in caplog.text
        assert "secret-uuid" not in caplog.text

    def test_a_run_while_another_holds_the_lease_fails_and_does_nothing(self, loop):
        assert tasks.acquire_lease(tasks.LEASE_NAME, "another-worker")
        loop.requests.clear()
        with pytest.raises(tasks.RunInProgress, match="already in progress"):
            run(loop, 0, remaining=8)
        assert not CreditLog.objects.exists()
        assert not loop.requests

    def test_an_expired_lease_is_taken_over(self, loop):
        assert tasks.acquire_lease(tasks.LEASE_NAME, "a-dead-worker", seconds=-1)
        assert run(loop, 0, remaining=8).startswith("WARNING:")


def _in_threads(target, count: int = 2) -> list:
    """Run `target` in `count` threads released together; each closes its own connection."""
    barrier = threading.Barrier(count)
    results: list = []

    def worker():
        try:
            barrier.wait()
            results.append(target())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
class TestOverlappingRuns:
    def test_two_overlapping_runs_notify_once(self, loop, webhook_receiver, balance_only):
        loop.set_key(PROD_KEY, limit=100, usage=92, limit_remaining=None)

        def one_run():
            try:
                return tasks.monitor_job(now=START)
            except tasks.RunInProgress as exc:  # the other run held the lease: a failure, not a success
                return exc

        results = _in_threads(one_run)
        assert len(results) == 2
        assert len(webhook_receiver.received) == 1
        assert Alert.objects.count() == 1
        assert AlertEvent.objects.count() == 1

    def test_two_overlapping_evaluations_open_the_alert_once(self, loop, balance_only):
        loop.set_key(PROD_KEY, limit=100, usage=92, limit_remaining=None)
        statuses = check_all(now=START)
        results = _in_threads(lambda: alerts.evaluate(statuses, START))
        assert sorted(len(events) for events in results) == [0, 1]
        assert AlertEvent.objects.filter(kind=AlertEvent.OPENED).count() == 1
        assert Delivery.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("first", [Alert.BALANCE, Alert.FORECAST])
def test_alerts_of_one_key_resolving_in_the_same_run_end_with_a_resolved_message(settings, first):
    """Two CRITICAL alerts on one key: the first told, the second (no worse) recorded in silence. When both resolve
    in one run, whichever order they are synced in, people hear that the key is fine again, once."""
    from monitoring.models import ApiKey

    settings.NOTIFY_URLS = "json://127.0.0.1:9/hook"
    key = ApiKey.objects.create(hash="c" * 64, name="Both Key", is_primary=True)
    at = START

    def sync(condition: str, level: int, hours: int) -> AlertEvent | None:
        return alerts.sync(alerts.Condition(key, condition, level, f"{condition} {level}"), at + timedelta(hours=hours))

    sync(Alert.BALANCE, Level.CRITICAL, 0)
    sync(Alert.FORECAST, Level.CRITICAL, 1)
    order = [first, Alert.FORECAST if first == Alert.BALANCE else Alert.BALANCE]
    for condition in order:
        sync(condition, Level.OK, 2)

    sent = list(Delivery.objects.order_by("id").values_list("event__kind", "event__alert__condition"))
    assert [kind for kind, _ in sent] == [AlertEvent.OPENED, AlertEvent.RESOLVED]
    assert sent[0][1] == Alert.BALANCE
    assert not Alert.objects.open().exists()
