"""Long ranges read the rollups (one row per key per day), and every answer is byte for byte what the raw log
gives: the pages and the JSON history are rendered twice on the same data at the same instant, once as they
run, once with the rollup readers replaced by the raw log, and compared. A full `rebuildrollups` changes
nothing either (the rows folded check by check equal the rows folded at once)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import api
from monitoring.models import Activity, ApiKey, CreditLog, hourly_aggregates
from monitoring.rollups import DailyFigureQuerySet

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 7, 30, tzinfo=UTC)
TOKEN = "rollup-token"
PAGES = [
    "/financial/?range=all",
    "/financial/?range=90",
    "/financial/?range=30",
    "/financial/?range=all&key=hash-dev-key-0000",
    "/api/history/?days=365",
    "/api/history/?days=90",
    "/api/history/?days=45&resolution=hour",
    "/api/history/?days=31&key=hash-dev-key-0000",
]


def raw_buckets(self, kind, tz, since=None, account=False):
    """DailyFigureQuerySet.buckets computed from the raw log, as the pages did before the daily rows."""
    rows = CreditLog.objects.successful()
    if account:
        rows = rows.filter(account_balance__isnull=False)
    else:
        rows = rows.filter(key_id__in=set(self.values_list("key_id", flat=True)))
    if since is not None:
        rows = rows.filter(timestamp__gte=datetime.combine(since, time.min, tzinfo=tz))
    return [{k: b[k] for k in ("bucket", "last_id", "low", "high")} for b in rows.buckets(kind, tz)]


def raw_hour_parts(start, end, keys, end_inclusive=True):
    """api.hour_parts from the raw log alone (no stored hour)."""
    upto = {"timestamp__lte": end} if end_inclusive else {"timestamp__lt": end}
    logs = CreditLog.objects.filter(key__in=keys, timestamp__gte=start, **upto)
    return sorted((api._part(p) for p in hourly_aggregates(logs)), key=lambda part: (part[0], part[1]))


@pytest.fixture
def year(settings, monkeypatch):
    """Two keys over 200 days (readings every 3 hours, a few failures, a cap raised), some activity."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    settings.CREDITMON_TIME_ZONE = "Europe/Berlin"  # local days that are not UTC days, DST changes inside
    settings.API_TOKEN = TOKEN
    settings.OPENROUTER_API_KEY = "sk-or-v1-configured"
    rng = random.Random(22)
    keys = [
        ApiKey.objects.create(hash="hash-prod-key-0000", name="Production Key", is_primary=True, credit_limit=900.0),
        ApiKey.objects.create(hash="hash-dev-key-0000", name="Dev Key", credit_limit=300.0),
    ]
    for n, key in enumerate(keys):
        rows, used, limit = [], 5.0, key.credit_limit
        when = NOW - timedelta(days=200, minutes=n * 7)
        while when <= NOW:
            if rng.random() < 0.03:
                rows.append(CreditLog(timestamp=when, key=key, ok=False, error="OpenRouter API error (502)"))
            else:
                used += rng.choice([0.0, 0.0, rng.uniform(0.01, 3.0)])
                limit += 200.0 if limit - used < 20 else 0.0
                rows.append(CreditLog(timestamp=when, key=key, label="sk-or-v1-abc...123", usage=round(used, 6),
                                      credit_limit=limit, remaining=round(limit - used, 6),
                                      account_credits=5000.0 if n == 0 else None,
                                      account_usage=100.0 + used if n == 0 else None,
                                      account_balance=4900.0 - used if n == 0 else None))  # fmt: skip
            when += timedelta(hours=3, minutes=rng.randint(-20, 20))
        CreditLog.objects.bulk_create(rows[:-40])
        for row in rows[-40:]:  # the newest checks written one by one, as the monitor does
            row.save()
    day = NOW.date() - timedelta(days=1)
    Activity.objects.bulk_create(
        Activity(date=day - timedelta(days=d), api_key_hash=h, model=m, endpoint_id=m, usage=u, requests=3)
        for d in range(120)
        for h, m, u in (("", "openai/gpt-4.1", 2.0), ("", "anthropic/claude-sonnet-4", 1.0), (keys[0].hash, "x", 3.0))
    )
    return keys


def render(client) -> dict[str, bytes]:
    found = {}
    for path in PAGES:
        response = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, path
        # The CSP nonce and the CSRF token are new on every response; nothing else may differ.
        body = re.sub(rb'nonce="[^"]+"', b'nonce=""', response.content)
        found[path] = re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", body)
    return found


def test_pages_and_history_from_the_rollups_equal_the_raw_log_byte_for_byte(year, client, admin_user, monkeypatch):
    client.force_login(admin_user)
    client.get("/financial/?range=30")  # a first view folds what was logged so far...
    CreditLog.objects.create(
        timestamp=NOW - timedelta(minutes=3),
        key=year[0],
        usage=999.0,
        credit_limit=2000.0,
        remaining=1001.0,
        account_credits=5000.0,
        account_usage=1099.0,
        account_balance=3901.0,
    )  # fmt: skip  ...and the next folds only what came after
    from_rollups = render(client)

    call_command("rebuildrollups", verbosity=0)
    assert render(client) == from_rollups  # folded check by check == folded at once

    monkeypatch.setattr(DailyFigureQuerySet, "buckets", raw_buckets)
    monkeypatch.setattr(api, "hour_parts", raw_hour_parts)
    monkeypatch.setattr(api, "stored_days", lambda first, last, keys: raw_hour_parts(first, last, keys, False))
    from_raw = render(client)
    for path in PAGES:
        assert from_rollups[path] == from_raw[path], path
    assert b"week of" in from_rollups["/financial/?range=all"]  # a long range, drawn in weeks
    assert from_rollups["/api/history/?days=365"].count(b'"checks"') > 300  # days of two keys were compared
