"""Retention: old raw rows are thinned, and no burn rate or daily figure changes."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring import forecast
from monitoring.models import ApiKey, AuditEntry, CreditLog
from monitoring.models import CreditLog as Log
from monitoring.retention import prune_credit_log
from monitoring.status import WINDOWS

NOW = datetime(2026, 3, 20, 14, 7, tzinfo=UTC)
ZONE = "America/New_York"  # a reporting zone whose days are not UTC days (and with a DST change in range)


@pytest.fixture
def history(db, settings):
    """70 days of checks every 20 minutes for two keys: uneven spend, a usage reset, top-ups, failures."""
    settings.CREDITMON_TIME_ZONE = ZONE
    rng = random.Random(5)
    keys = [ApiKey.objects.create(hash=c * 64, name=f"key {c}") for c in "ab"]
    rows = []
    for key in keys:
        usage, credits = 10.0, 100.0
        when = NOW - timedelta(days=70)
        while when <= NOW:
            when += timedelta(minutes=20, seconds=rng.randint(-30, 30))
            if rng.random() < 0.03:
                rows.append(CreditLog(key=key, timestamp=when, ok=False, error="OpenRouter API error (502)"))
                continue
            usage += rng.choice([0.0, 0.0, 0.01, 0.05, 0.4])
            if key.name == "key a" and abs((NOW - when) - timedelta(days=50)) < timedelta(minutes=11):
                usage = 0.2  # the key's usage counter was reset
            if rng.random() < 0.002:
                credits += 50  # a top-up
            rows.append(
                CreditLog(key=key, timestamp=when, usage=usage, remaining=credits - usage, account_credits=credits)
            )
    CreditLog.objects.bulk_create(rows)
    return keys


def figures(keys) -> dict:
    """Every figure the pages derive from raw rows: burn rates per window, daily spend (UTC and local), top-ups."""
    found = {}
    for key in keys:
        samples = CreditLog.objects.usage_samples(key, NOW - timedelta(days=400))
        for label, days in WINDOWS.items():
            found[(key.pk, "python", label)] = forecast.burn_rate_per_day(samples, NOW, days)
        for label, rate in Log.objects.burn_rates([key], NOW, WINDOWS)[key.pk].items():
            found[(key.pk, "sql", label)] = rate
        for zone in (UTC, ZoneInfo(ZONE)):
            for day, spent in forecast.daily_spend(samples, zone).items():
                found[(key.pk, str(zone), day)] = round(spent, 9)
        credits = list(
            CreditLog.objects.for_key(key)
            .successful()
            .order_by("timestamp")
            .values_list("timestamp", "account_credits")
        )
        found[(key.pk, "topups")] = sum(amount for _, amount in forecast.topups(credits))
    return found


def test_pruning_changes_no_burn_rate_and_no_daily_spend(history):
    before = figures(history)
    count = CreditLog.objects.count()
    result = prune_credit_log(31, now=NOW)
    after = figures(history)
    assert result.deleted > 0
    assert CreditLog.objects.count() == count - result.deleted
    assert CreditLog.objects.count() < count * 0.65  # 39 of 70 days thinned to a few rows a day
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert after[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert before[(history[0].pk, "python", "30d")] == pytest.approx(before[(history[0].pk, "sql", "30d")])


def test_recent_rows_are_all_kept(history):
    cutoff = datetime(2026, 2, 17, tzinfo=UTC)  # start of the UTC day 31 days before NOW
    recent = CreditLog.objects.filter(timestamp__gte=cutoff).count()
    result = prune_credit_log(31, now=NOW)
    assert result.cutoff == cutoff
    assert CreditLog.objects.filter(timestamp__gte=cutoff).count() == recent


def test_old_failures_keep_one_per_key_and_day(history):
    old = CreditLog.objects.failed().filter(timestamp__lt=datetime(2026, 2, 17, tzinfo=UTC))
    days = {(key_id, when.date()) for key_id, when in old.values_list("key_id", "timestamp")}
    prune_credit_log(31, now=NOW)
    assert old.count() == len(days)


def test_a_second_run_deletes_nothing_more(history):
    prune_credit_log(31, now=NOW)
    assert prune_credit_log(31, now=NOW).deleted == 0


def test_a_dry_run_counts_but_deletes_nothing(history):
    count = CreditLog.objects.count()
    dry = prune_credit_log(31, now=NOW, dry_run=True)
    assert CreditLog.objects.count() == count
    assert dry.deleted == prune_credit_log(31, now=NOW).deleted


def test_the_command_reports_what_it_would_delete(history, settings):
    settings.RETENTION_DAYS = 40
    count = CreditLog.objects.count()
    out = io.StringIO()
    call_command("prunecreditlog", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Would delete ")
    assert CreditLog.objects.count() == count
    call_command("prunecreditlog", stdout=out)
    assert "Deleted " in out.getvalue()
    assert CreditLog.objects.count() < count


def test_the_command_does_nothing_while_retention_is_off(history, settings):
    settings.RETENTION_DAYS = 0
    count = CreditLog.objects.count()
    out = io.StringIO()
    call_command("prunecreditlog", stdout=out)
    assert "Retention is off" in out.getvalue()
    assert CreditLog.objects.count() == count


def test_the_command_refuses_a_window_shorter_than_the_burn_rates(history):
    with pytest.raises(CommandError, match="at least 31"):
        call_command("prunecreditlog", "--days", "7")


@pytest.mark.django_db
def test_the_scheduled_job_thins_old_rows_once_a_day(sim, settings):
    from monitoring.tasks import monitor_job

    settings.RETENTION_DAYS = 31
    key = ApiKey.objects.create(hash="f" * 64, name="old key")
    old = timezone.now() - timedelta(days=60)
    CreditLog.objects.bulk_create(
        CreditLog(key=key, timestamp=old + timedelta(minutes=5 * i), usage=1.0 + i / 100) for i in range(100)
    )
    monitor_job()
    thinned = CreditLog.objects.filter(key=key).count()
    assert thinned < 100
    CreditLog.objects.bulk_create(
        CreditLog(key=key, timestamp=old + timedelta(minutes=5 * i, seconds=30), usage=1.0 + i / 100)
        for i in range(1, 50)
    )
    monitor_job()  # the same day: the lease holds the next thinning back
    assert CreditLog.objects.filter(key=key).count() == thinned + 49


def test_the_audit_trail_is_kept_as_long_as_the_raw_log(db):
    old = AuditEntry.objects.create(created=NOW - timedelta(days=45), actor="otto", action="acknowledge")
    recent = AuditEntry.objects.create(created=NOW - timedelta(days=10), actor="otto", action="snooze")
    assert prune_credit_log(31, now=NOW, dry_run=True).audit_deleted == 1
    assert AuditEntry.objects.count() == 2
    assert prune_credit_log(31, now=NOW).audit_deleted == 1
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [recent.pk] and old.pk != recent.pk
