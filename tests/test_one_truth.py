"""One truth: the same data gives the same level and figures on every surface.

Each state is made by real checks against the simulated OpenRouter (earlier checks at earlier times),
then read through the CLI report and `--json`, `/api/status/`, `/metrics`, System Health, and the
notification sent for it.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring import alerts, monitor, notify, status
from monitoring.models import Alert, AlertEvent, ApiKey, CreditLog, Level
from monitoring.openrouter import key_hash
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY

pytestmark = pytest.mark.django_db

TOKEN = "one-truth-token"


@pytest.fixture
def surfaces(sim, settings, client, django_user_model):
    settings.API_TOKEN = settings.METRICS_TOKEN = TOKEN
    sim.set_scenario("management")
    client.force_login(django_user_model.objects.create_superuser("ops", password="x" * 16))
    return client


def cli(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("checkcredits", *args, stdout=out, stderr=StringIO())
    return exited.value.code, out.getvalue()


def read_every_surface(client) -> dict[str, dict[str, tuple[str, str | None]]]:
    """{surface: {key name: (level, days left to one decimal)}} from each surface, for the same data."""
    found: dict[str, dict] = {}
    code, out = cli("--json")
    payload = json.loads(out)
    found["json"] = {k["key"]: (k["level"], _days(k["days_left"])) for k in payload["keys"]}
    found["exit"] = {"*": (Level(code).label, None)}
    found["json-overall"] = {"*": (payload["status"], None)}

    api = client.get("/api/status/", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    found["api"] = {k["key"]: (k["level"], _days(k["days_left"])) for k in api["keys"]}
    found["api-overall"] = {"*": (api["level"], None)}

    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    levels, days = {}, {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "creditmon_check_level":
                levels[sample.labels["key"]] = Level(int(sample.value)).label
            elif sample.name == "creditmon_days_left":
                days[sample.labels["key"]] = _days(sample.value)
            elif sample.name == "creditmon_level":
                found["metrics-overall"] = {"*": (Level(int(sample.value)).label, None)}
    found["metrics"] = {name: (level, days.get(name)) for name, level in levels.items()}

    page = client.get("/health/").text
    cards = {}
    for level_css, body in re.findall(r'<article class="card key-card level-(\w+)"(.*?)</article>', page, re.S):
        name = re.search(r'class="key-name">([^<]+)<', body).group(1)
        left = re.search(r'data-figure="days-left">([\d.]+) days', body)
        cards[name] = (level_css.upper(), left.group(1) if left else None)
    found["health"] = cards
    return found


def _days(value) -> str | None:
    return None if value is None else f"{value:.1f}"


def assert_all_agree(found: dict, expected: dict[str, tuple[str, str | None]], overall: str) -> None:
    for surface in ("json", "api", "metrics", "health"):
        assert found[surface] == expected, surface
    for surface in ("exit", "json-overall", "api-overall", "metrics-overall"):
        assert found[surface] == {"*": (overall, None)}, surface


def test_a_capped_key_running_out_in_a_day_and_a_half_is_critical_everywhere(surfaces, sim, settings):
    now = timezone.now()
    sim.set_key(PROD_KEY, usage=75.0, limit=100.0, limit_remaining=25.0)
    monitor.check_all(now=now - timedelta(days=1))
    sim.set_key(PROD_KEY, usage=85.0, limit=100.0, limit_remaining=15.0)  # $10/day, $15 left: 1.5 days

    code, report = cli()
    assert code == 2
    assert "Balance: $15.00 remaining" in report
    assert "Burn Rate: $10.00/day (over the last 1.0 days)" in report
    assert "Days Left: 1.5 days at current rate" in report
    assert "✗ CRITICAL: Runs out in 1.5 days at $10.00/day ($15.00 left)" in report

    found = read_every_surface(surfaces)
    name = ApiKey.objects.get(hash=key_hash(PROD_KEY)).display_name
    assert_all_agree(found, {name: ("CRITICAL", "1.5")}, "CRITICAL")
    assert "CRITICAL" in surfaces.get("/health/").text


def test_two_uncapped_keys_on_one_account_run_out_with_the_account(surfaces, sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    now = timezone.now()
    for token in (PROD_KEY, DEV_KEY):
        sim.set_key(token, limit=None, limit_remaining=None, limit_reset=None)
    sim.set_key(PROD_KEY, usage=50.0)
    sim.set_key(DEV_KEY, usage=10.0)
    sim.set_account(100.0, 44.80)
    monitor.check_all(now=now - timedelta(days=1))
    # A day later both keys spent $3.20: the account drains at $6.40/day with $48.80 left.
    sim.set_key(PROD_KEY, usage=53.20)
    sim.set_key(DEV_KEY, usage=13.20)
    sim.set_account(100.0, 51.20)

    code, report = cli()
    assert "Burn Rate: $3.20/day (over the last 1.0 days)" in report  # the key's own spend
    assert "Days Left: 7.6 days at current rate (the account balance runs out first: all keys share it)" in report
    assert "Account Days Left: 7.6 days at current rate" in report

    found = read_every_surface(surfaces)
    names = [k.display_name for k in ApiKey.objects.watched()]
    assert len(names) == 2
    assert_all_agree(found, dict.fromkeys(names, ("OK", "7.6")), "OK")
    api = surfaces.get("/api/status/", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert api["account"]["days_left"] == 7.6 and api["account"]["burn_rate_per_day"] == pytest.approx(6.4)
    assert {k["binding"] for k in api["keys"]} == {"account"}
    assert "account balance runs out first" in surfaces.get("/financial/").text


def test_two_checks_seconds_apart_give_no_daily_rate_and_no_forecast_alert(surfaces, sim, settings, webhook_receiver):
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    now = timezone.now()
    sim.set_key(PROD_KEY, usage=54.0, limit=100.0, limit_remaining=46.0)
    monitor.run_monitor(now=now - timedelta(seconds=30))
    sim.set_key(PROD_KEY, usage=55.0, limit=100.0, limit_remaining=45.0)  # $1 in 30 s: not $2,880/day
    found = monitor.run_monitor(now=now)

    prod = found.primary
    assert prod.burn_rate is None and prod.days_left is None
    assert prod.burn_note == "unknown (need readings over at least 1 hour)"
    assert not Alert.objects.filter(condition=Alert.FORECAST).exclude(level=Level.OK).exists()
    assert webhook_receiver.received == []
    _, report = cli()
    assert "Burn Rate: unknown (need readings over at least 1 hour" in report
    api = surfaces.get("/api/status/", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert api["keys"][0]["burn_rate"] is None
    assert api["keys"][0]["burn_rate_window"] == "unknown (need readings over at least 1 hour)"


@pytest.mark.parametrize("failure", ["http401", "http402"])
def test_a_rejected_key_or_an_empty_account_is_critical_at_the_first_check(surfaces, sim, failure):
    sim.set_failure(failure)
    found = read_every_surface(surfaces)
    name = ApiKey.objects.get(hash=key_hash(PROD_KEY)).display_name
    assert_all_agree(found, {name: ("CRITICAL", None)}, "CRITICAL")
    monitor.run_monitor()
    alert = Alert.objects.open().get(condition=Alert.FAILURES)
    assert alert.level == Level.CRITICAL and f"({failure[-3:]})" in alert.message


def test_a_server_error_stays_unknown_until_the_failure_rule(surfaces, sim):
    sim.set_failure("http502")
    code, report = cli()
    assert code == 3
    assert "1 of 3 failed checks before an alert" in status.build(timezone.now()).primary.message
    monitor.run_monitor()
    assert not Alert.objects.open().filter(condition=Alert.FAILURES).exists()


def test_a_replaced_key_leaves_every_surface_and_keeps_its_history(surfaces, sim, settings, webhook_receiver):
    sim.set_scenario("low")  # a warning on the old key
    monitor.run_monitor()
    old = ApiKey.objects.get(hash=key_hash(PROD_KEY))
    ApiKey.objects.filter(pk=old.pk).update(name="Old Key")
    assert Alert.objects.open().filter(key=old).exists()

    settings.OPENROUTER_API_KEY = DEV_KEY  # the key was replaced in .env
    monitor.run_monitor()

    old.refresh_from_db()
    assert old.retired_at is not None and "no longer configured" in old.retired_reason and not old.is_primary
    assert not Alert.objects.open().filter(key=old).exists()
    resolved = AlertEvent.objects.filter(alert__key=old, kind=AlertEvent.RESOLVED).get()
    assert "no longer watched" in resolved.message
    assert CreditLog.objects.filter(key=old).count() == 1  # the history stays
    found = read_every_surface(surfaces)
    for surface in ("json", "api", "metrics", "health"):
        assert old.display_name not in found[surface], surface
    assert [k.hash for k in ApiKey.objects.filter(is_primary=True)] == [key_hash(DEV_KEY)]
    assert old.display_name in surfaces.get("/admin/monitoring/apikey/").text  # still inspectable

    settings.OPENROUTER_API_KEY = PROD_KEY  # put back: watched again
    monitor.check_all()
    old.refresh_from_db()
    assert old.retired_at is None


def test_a_reading_from_a_clock_that_stepped_back_is_not_a_reset(surfaces, sim):
    now = timezone.now()
    sim.set_key(PROD_KEY, usage=50.0, limit=100.0, limit_remaining=50.0)
    monitor.check_all(now=now - timedelta(hours=2))
    sim.set_key(PROD_KEY, usage=56.0, limit=100.0, limit_remaining=44.0)
    monitor.check_all(now=now)
    sim.set_key(PROD_KEY, usage=56.5, limit=100.0, limit_remaining=43.5)
    monitor.check_all(now=now - timedelta(minutes=10))  # the clock went back ten minutes

    readings = list(CreditLog.objects.order_by("timestamp").values_list("timestamp", "usage", "spend_total"))
    assert [u for _, u, _ in readings] == [50.0, 56.0, 56.5]  # stored after the newest reading, in order
    assert readings[-1][2] == pytest.approx(6.5)  # 6.5 spent in all: no "reset" worth $56.50
    prod = status.build(now + timedelta(seconds=1)).primary
    assert prod.burn_rate == pytest.approx(6.5 / (2 / 24), rel=0.01)


def test_every_list_puts_critical_before_unknown_before_warning(surfaces, sim):
    key = ApiKey.objects.create(hash="c" * 64, name="Some Key")
    for level in (Level.WARNING, Level.UNKNOWN, Level.CRITICAL, Level.OK):
        Alert.objects.create(key=key, condition=f"c{level}", level=level, message=f"message-{Level(level).label}")
    assert [a.level for a in Alert.objects.worst_first()] == [Level.CRITICAL, Level.UNKNOWN, Level.WARNING, Level.OK]
    page = surfaces.get("/alerts/").text
    assert page.index("message-CRITICAL") < page.index("message-UNKNOWN") < page.index("message-WARNING")


def test_the_notification_says_what_the_other_surfaces_say(surfaces, sim, settings, webhook_receiver):
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    now = timezone.now()
    sim.set_key(PROD_KEY, usage=75.0, limit=100.0, limit_remaining=25.0)
    monitor.run_monitor(now=now - timedelta(days=1))
    sim.set_key(PROD_KEY, usage=85.0, limit=100.0, limit_remaining=15.0)
    found = monitor.run_monitor(now=now)

    forecast_alert = Alert.objects.open().get(condition=Alert.FORECAST)
    assert forecast_alert.level == found.primary.level == Level.CRITICAL
    body = webhook_receiver.received[-1]["body"]["message"]
    assert "Days Left: 1.5 days at current rate" in body
    assert found.primary.message in body
    assert notify.render(AlertEvent.objects.filter(alert=forecast_alert).first())[0].startswith("[CRITICAL]")
    assert alerts.forecast_condition(found.primary, None).level == Level.CRITICAL


def test_an_open_alert_only_the_rules_see_raises_the_level_on_every_surface(surfaces, sim):
    monitor.check_all()
    key = ApiKey.objects.get(hash=key_hash(PROD_KEY))
    Alert.objects.create(key=key, condition=Alert.SPIKE, level=Level.WARNING, message="Spent $55.00 today")
    found = read_every_surface(surfaces)
    assert_all_agree(found, {key.display_name: ("WARNING", None)}, "WARNING")
    assert "WARNING · System Health" in surfaces.get("/health/").text
