"""Many keys listed by a management key: beyond STATUS_LIVE_KEYS the pages rank, count and search the keys by
the figures the last check stored, and build only the page shown. 300 keys and small pages stand for 10,000."""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import dashboard, monitor, status
from monitoring.models import Alert, ApiKey, CreditLog, DailyFigure, Level
from monitoring.simulator import MANAGEMENT_KEY

LISTED = 300
SEVERITY_OF = {"OK": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3}


@pytest.fixture
def many(sim, settings, admin_user, client):
    """One check of the many-keys world scaled to LISTED keys, with pages of 10 and live building up to 20."""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.STATUS_LIVE_KEYS = 20
    settings.HEALTH_KEYS_PER_PAGE = 10
    settings.CREDITMON_TIME_ZONE = "UTC"
    settings.METRICS_TOKEN = "metrics-token"
    sim.many_keys = LISTED
    try:
        sim.set_scenario("many-keys")
        monitor.check_all()
    finally:
        sim.many_keys = 150
    client.force_login(admin_user)
    return client


def levels_in(html: str) -> list[str]:
    """The level badges of the key table's rows, in order."""
    table = html.split('id="keys-page"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<span class="badge badge-[a-z]+">([A-Z]+)</span>', table)


@pytest.mark.django_db
def test_the_stored_figures_are_what_the_status_says(many):
    keys = ApiKey.objects.watched()
    assert keys.count() > LISTED - 5 and not keys.filter(figures_at__isnull=True).exists()
    when = keys.first().figures_at
    live = {s.key.pk: s for s in status.build(when).keys if s.key is not None}
    for key in keys:
        found = live[key.pk]
        assert (key.level, key.level_reason, key.remaining_usd, key.days_left) == (
            found.level,
            found.message,
            found.remaining,
            found.days_left,
        ), key.name
    assert len({key.level for key in keys}) > 1  # the world has keys at several levels: the test can fail
    assert status.build(when, pages=True).counts == status.build(when).counts
    later = when + timedelta(days=3)  # no check since: stale, as the live status says
    assert status.build(later, pages=True).counts == status.build(later).counts
    assert "UNKNOWN" in status.build(later, pages=True).counts


@pytest.mark.django_db
def test_system_health_shows_the_counts_and_a_page_of_the_worst_keys(many):
    total = ApiKey.objects.watched().count()
    page = many.get("/health/").text
    counts = status.build(ApiKey.objects.first().figures_at).counts
    assert f"All keys ({total})" in page
    for name, n in counts.items():
        assert f'data-level="{name.lower()}">{n} {name}</span>' in page
    first = levels_in(page)
    second = levels_in(many.get("/health/?page=2").text)
    assert len(first) == len(second) == 10
    ranks = [SEVERITY_OF[name] for name in first + second]
    assert ranks == sorted(ranks, reverse=True)  # worst first across the pages
    assert f"Page 1 of {-(-total // 10)} ({total} keys)" in page
    Alert.objects.bulk_create(
        Alert(key=k, condition=Alert.BALANCE, level=Level.WARNING, message=f"low {k.name}")
        for k in ApiKey.objects.all()[:150]
    )
    alerts = many.get("/alerts/").text  # the worst 100 keys' current state, the rest on System Health
    assert "Open alerts (150)" in alerts and 'id="open-alerts-hidden"' in alerts
    assert alerts.count('<tr><th scope="row" class="key-name"') == 100
    assert f"{total - 100} more on" in alerts


@pytest.mark.django_db
def test_system_health_finds_a_key_by_name_or_hash_prefix(many):
    by_name = many.get("/health/?q=key-123").text
    assert levels_in(by_name) and "key-123" in by_name and "key-124" not in by_name
    key = ApiKey.objects.get(name="key-042")
    by_hash = many.get(f"/health/?q={key.hash[:12]}").text
    assert len(levels_in(by_hash)) == 1 and "key-042" in by_hash
    assert 'id="no-key-found"' in many.get("/health/?q=no-such-key").text
    last = ApiKey.objects.watched().worst_first().last()
    financial = many.get(f"/financial/?key={last.pk}").text  # the key least in need still has its page
    assert f'<strong class="key-name">{last.name}</strong>' in financial
    assert financial.count("<option ") == 51  # the worst 50 and the key shown


@pytest.mark.django_db
def test_the_api_pages_the_keys_worst_first_and_filters_a_level(many):
    seen, ranks = [], []
    total = ApiKey.objects.watched().count()
    first = many.get("/api/status/?per_page=100").json()
    assert first["page"] == {"number": 1, "per_page": 100, "pages": 3, "keys": total, "level": None}
    for number in range(1, 4):
        body = many.get(f"/api/status/?per_page=100&page={number}").json()
        seen += [k["key_hash"] for k in body["keys"]]
        ranks += [SEVERITY_OF[k["level"]] for k in body["keys"]]
    assert len(seen) == len(set(seen)) == total
    assert ranks == sorted(ranks, reverse=True)
    warning = many.get("/api/status/?level=warning&per_page=1000").json()
    assert warning["page"]["keys"] == first["counts"]["WARNING"] == len(warning["keys"]) > 0
    assert {k["level"] for k in warning["keys"]} == {"WARNING"}
    assert many.get("/api/status/?page=4&per_page=100").status_code == 400


@pytest.mark.django_db
def test_metrics_give_series_to_the_worst_keys_and_count_every_key(many, settings):
    settings.METRICS_MAX_KEYS = 25
    total = ApiKey.objects.watched().count()
    text = many.get("/metrics", headers={"Authorization": "Bearer metrics-token"}).text
    assert len(re.findall(r"^creditmon_check_level\{", text, re.M)) == 25
    assert f"creditmon_keys_without_series {total - 25}.0" in text
    counted = sum(float(n) for n in re.findall(r'^creditmon_keys\{level="[A-Z]+"\} (\S+)', text, re.M))
    assert counted == total


@pytest.mark.django_db
def test_spend_by_key_from_the_daily_rollups_is_what_the_log_gives(settings):
    settings.CREDITMON_TIME_ZONE = "America/New_York"
    tz = zoneinfo.ZoneInfo("America/New_York")
    now = timezone.now()
    for n in range(3):
        key = ApiKey.objects.create(hash=f"{n}" * 64, name=f"Key {n}")
        readings = [(hours, 1.0 + n + 0.7 * i) for i, hours in enumerate(range(24 * 12, 0, -7))]
        CreditLog.objects.bulk_create(
            CreditLog(key=key, timestamp=now - timedelta(hours=h), usage=u, remaining=50.0 - u) for h, u in readings
        )
    DailyFigure.objects.refresh()
    for days in (7, None):
        start = dashboard.range_start(now, days, tz)
        logs = CreditLog.objects.successful().filter(usage__isnull=False)
        window = logs.since(start - timedelta(days=1)) if start else logs
        expected = {}  # the log's own day buckets, as the page read them before the rollups
        for key_id in {row["key_id"] for row in window.buckets("day", tz, by_key=True)}:
            rows = [r for r in window.buckets("day", tz, by_key=True) if r["key_id"] == key_id]
            spends = dashboard.spend_per_bucket(rows)
            expected[ApiKey.objects.get(pk=key_id).name] = sum(
                s for r, s in zip(rows, spends, strict=True) if not start or r["bucket"] >= start
            )
        drivers, chart = dashboard.logged_spend_by_key(start, tz)
        assert {row["name"]: row["spend"] for row in drivers} == pytest.approx(expected)
        assert len(expected) == 3 and all(spend > 0 for spend in expected.values())
        assert chart is not None
