"""/metrics: Prometheus text from the database, read back with prometheus_client's own parser."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring import forecast
from monitoring.models import Alert, ApiKey, CreditLog, Level
from monitoring.monitor import check_all
from monitoring.openrouter import key_hash
from monitoring.simulator import PROD_KEY

TOKEN = "metrics-secret-token"


@pytest.fixture
def seeded(db, settings):
    """Two keys: prod with 10 days of hourly checks ($2.40/day), dev whose last two checks failed."""
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()
    prod = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
    dev = ApiKey.objects.create(hash="b" * 64, name="Dev Key")
    rows = []
    for hour in range(240, -1, -1):
        when = now - timedelta(hours=hour)
        used = 50.0 - hour * 0.1
        rows.append(
            CreditLog(
                key=prod,
                timestamp=when,
                usage=used,
                credit_limit=100.0,
                remaining=100.0 - used,
                account_balance=69.5,
                duration_ms=120,
            )
        )
    rows.append(CreditLog(key=dev, timestamp=now - timedelta(hours=3), usage=3.1, remaining=16.9, credit_limit=20.0))
    rows.append(CreditLog(key=dev, timestamp=now - timedelta(hours=2), ok=False, error="OpenRouter API error (502)"))
    rows.append(
        CreditLog(
            key=dev, timestamp=now - timedelta(hours=1), ok=False, error="OpenRouter API error (502)", duration_ms=2500
        )
    )
    CreditLog.objects.bulk_create(rows)
    Alert.objects.create(key=dev, condition=Alert.FAILURES, level=Level.UNKNOWN, message="Checks failing")
    Alert.objects.create(key=None, condition=Alert.BUDGET, level=Level.WARNING, message="Over budget")
    return {"prod": prod, "dev": dev, "now": now}


def scrape(client, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/metrics", headers=headers)


def samples(response) -> dict[tuple, float]:
    """{(metric name, sorted label items): value} for every sample, via prometheus_client's parser."""
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def labels(name: str, key_hash_prefix: str, **extra) -> tuple:
    return tuple(sorted({"key": name, "key_hash": key_hash_prefix, **extra}.items()))


def test_it_refuses_a_scrape_without_a_token(seeded, client):
    response = scrape(client, token=None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_wrong_token(seeded, client):
    assert scrape(client, token="not-the-token").status_code == 401


def test_it_refuses_every_scrape_while_metrics_token_is_unset(seeded, client, settings):
    settings.METRICS_TOKEN = ""
    response = scrape(client, token="")
    assert response.status_code == 403
    assert b"set METRICS_TOKEN" in response.content


def test_a_logged_in_session_is_not_enough(seeded, client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", password="x" * 12))
    assert scrape(client, token=None).status_code == 401


def test_it_exports_the_latest_figures_per_key(seeded, client):
    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response)
    prod = labels("Production Key", "a" * 12)
    assert found[("creditmon_remaining_usd", prod)] == pytest.approx(50.0)
    assert found[("creditmon_key_usage_usd", prod)] == pytest.approx(50.0)
    assert found[("creditmon_key_limit_usd", prod)] == 100.0
    assert found[("creditmon_account_balance_usd", ())] == 69.5
    assert found[("creditmon_check_duration_seconds", prod)] == pytest.approx(0.12)
    assert found[("creditmon_consecutive_failures", prod)] == 0
    assert found[("creditmon_check_level", prod)] == Level.OK
    last = CreditLog.objects.latest_for(seeded["prod"]).timestamp.timestamp()
    assert found[("creditmon_last_success_timestamp_seconds", prod)] == pytest.approx(last)


def test_burn_rates_per_window_match_the_forecast_functions(seeded, client):
    found = samples(scrape(client))
    prod_key, now = seeded["prod"], seeded["now"]
    series = CreditLog.objects.usage_samples(prod_key, now - timedelta(days=31))
    for window, days in (("1d", 1), ("7d", 7), ("30d", 30)):
        expected = forecast.burn_rate_per_day(series, timezone.now(), days)
        got = found[("creditmon_burn_rate_usd_per_day", labels("Production Key", "a" * 12, window=window))]
        assert got == pytest.approx(expected, rel=1e-6)
        assert got == pytest.approx(2.4, rel=1e-6)
    days_left = found[("creditmon_days_left", labels("Production Key", "a" * 12))]
    assert days_left == pytest.approx(50.0 / 2.4, rel=1e-6)


def test_failures_and_open_alerts_show_per_key_and_condition(seeded, client):
    found = samples(scrape(client))
    dev = labels("Dev Key", "b" * 12)
    assert found[("creditmon_consecutive_failures", dev)] == 2
    assert found[("creditmon_check_level", dev)] == Level.UNKNOWN
    assert found[("creditmon_check_duration_seconds", dev)] == 2.5
    assert found[("creditmon_remaining_usd", dev)] == pytest.approx(16.9)
    assert found[("creditmon_alert_level", labels("Dev Key", "b" * 12, condition="failures", subject=""))] == 3
    assert found[("creditmon_alert_level", labels("", "", condition="budget", subject=""))] == 1
    assert not any(name == "creditmon_burn_rate_usd_per_day" and dict(lbl)["key"] == "Dev Key" for name, lbl in found)


def test_a_resolved_alert_is_no_longer_exported(seeded, client):
    Alert.objects.filter(condition=Alert.FAILURES).update(resolved_at=timezone.now())
    found = samples(scrape(client))
    assert not [name for name, lbl in found if name == "creditmon_alert_level" and dict(lbl)["key"] == "Dev Key"]


def test_it_reads_what_a_real_check_logged_and_never_shows_the_key(db, sim, client, settings):
    settings.METRICS_TOKEN = TOKEN
    check_all()
    response = scrape(client)
    body = response.content.decode()
    assert PROD_KEY not in body
    assert key_hash(PROD_KEY) not in body  # only a prefix of the hash is a label
    found = samples(response)
    key = ApiKey.objects.get(hash=key_hash(PROD_KEY))
    prefix = key_hash(PROD_KEY)[:12]
    assert found[("creditmon_remaining_usd", labels(key.display_name, prefix))] == pytest.approx(45.23)


def test_it_needs_the_same_few_queries_whatever_the_number_of_keys(seeded, client, django_assert_max_num_queries):
    for n in range(5):
        key = ApiKey.objects.create(hash=f"{n}" * 64, name=f"Extra {n}")
        CreditLog.objects.create(key=key, usage=1.0, remaining=9.0)
    # schedule, alerts, keys with figures, their log rows, the rows of keys bulk-loaded without running totals,
    # stored activity, the account's two readings, a key-less failure, the count of watched keys: none per key
    with django_assert_max_num_queries(10):
        assert scrape(client).status_code == 200


def test_a_usage_reset_inside_the_window_is_read_as_the_forecast_reads_it(seeded, client):
    key = ApiKey.objects.create(hash="c" * 64, name="Reset Key")
    now = timezone.now()
    readings = [(5, 10.0), (4, 20.0), (3, 30.0), (2, 2.0), (1, 5.0)]  # the counter was reset 2 hours ago
    CreditLog.objects.bulk_create(
        [CreditLog(key=key, timestamp=now - timedelta(hours=h), usage=u, remaining=50.0) for h, u in readings]
    )
    found = samples(scrape(client))
    got = found[("creditmon_burn_rate_usd_per_day", labels("Reset Key", "c" * 12, window="1d"))]
    expected = forecast.burn_rate_per_day(CreditLog.objects.usage_samples(key, now - timedelta(days=2)), now, 1)
    assert got == pytest.approx(expected)
    assert got == pytest.approx(25 / 4 * 24)


def test_the_readme_lists_every_series_served(seeded, client):
    root = Path(__file__).resolve().parents[1]
    section = root.joinpath("README.md").read_text().split("## Prometheus metrics", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(creditmon_[a-z_]+)`", section))
    served = {family.name for family in text_string_to_metric_families(scrape(client).content.decode())}
    declared = set(re.findall(r'"(creditmon_[a-z_]+)"', root.joinpath("monitoring/api.py").read_text()))
    assert served and served <= declared
    assert declared - listed == set()
    assert "money that binds" in section  # days_left is the binding figure, not the key's own


def test_keys_beyond_the_cap_are_counted_by_level_without_series_of_their_own(seeded, client, settings):
    for n in range(4):
        key = ApiKey.objects.create(hash=f"{n}" * 64, name=f"Extra {n}")
        CreditLog.objects.create(key=key, usage=1.0, remaining=90.0, credit_limit=100.0)
    settings.METRICS_MAX_KEYS = 2
    found = samples(scrape(client))
    per_key = {dict(labels)["key"] for (name, labels) in found if name == "creditmon_check_level"}
    assert per_key == {"Dev Key", "Production Key"}  # the two worst: dev is UNKNOWN, prod's figures come next
    assert found[("creditmon_keys_without_series", ())] == 4
    by_level = {dict(labels)["level"]: value for (name, labels), value in found.items() if name == "creditmon_keys"}
    assert sum(by_level.values()) == 6 and by_level["UNKNOWN"] >= 1
