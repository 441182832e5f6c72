"""Fill the benchmark database: checks every few minutes for several keys, activity, alerts.

Raw multi-row inserts (executemany on SQLite, COPY on PostgreSQL) rather than the ORM, so a
million rows take seconds to a couple of minutes, with every column the ORM would have written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from monitoring.models import Activity, Alert, AlertEvent, ApiKey, CreditLog, DailyFigure, HourlyFigure, Level
from monitoring.openrouter import key_hash
from monitoring.simulator import MODELS, PROD_KEY

FAIL_EVERY = 200  # one failed check in 200 (0.5 %)
KEY_LIMIT = 5000.0
CHUNK = 20_000


def is_fresh(rows: int, keys: int) -> bool:
    newest = CreditLog.objects.order_by("-timestamp").values_list("timestamp", flat=True).first()
    return (
        newest is not None
        and timezone.now() - newest < timedelta(hours=1)
        and ApiKey.objects.filter(label__startswith="sk-or-v1-b").count() == keys  # the fill's, beside the checks'
        and CreditLog.objects.count() >= rows  # the bench's checks add a few thousand
    )


def analyze() -> None:
    """PostgreSQL's autovacuum would have vacuumed and analysed a table this size (the visibility map
    index-only scans need, the planner's statistics); a bulk load has to ask."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def clear() -> None:
    """Empty every table of the app (what an earlier bench's checks added too: keys, alerts, tasks, runs)."""
    from django.apps import apps

    tables = [m._meta.db_table for m in apps.get_app_config("monitoring").get_models()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(tables) + " CASCADE")
        else:
            for table in tables:
                cursor.execute(f'DELETE FROM "{table}"')


def make_keys(count: int, now: datetime) -> list[ApiKey]:
    keys = []
    for n in range(count):
        token = PROD_KEY if n == 0 else f"sk-or-v1-bench-key-{n:02d}"
        keys.append(
            ApiKey(
                hash=key_hash(token),
                name="Production Key" if n == 0 else f"Team key {n:02d}",
                label=f"sk-or-v1-b{n:02d}...{n:03d}",
                source=ApiKey.SOURCE_CONFIGURED if n == 0 else ApiKey.SOURCE_LISTED,
                is_primary=n == 0,
                credit_limit=KEY_LIMIT,
                first_seen=now - timedelta(days=400),
                last_seen=now,
            )
        )
    return ApiKey.objects.bulk_create(keys)


def raw_response(key: ApiKey, usage: float) -> str:
    """About the size of a real GET /key answer (25 fields)."""
    return json.dumps(
        {
            "data": {
                "label": key.label, "usage": usage, "limit": KEY_LIMIT, "limit_remaining": KEY_LIMIT - usage,
                "limit_reset": None, "is_free_tier": False, "is_management_key": False, "is_provisioning_key": False,
                "include_byok_in_limit": False, "usage_daily": 3.1, "usage_weekly": 21.7, "usage_monthly": 93.0,
                "byok_usage": 0, "byok_usage_daily": 0, "byok_usage_weekly": 0, "byok_usage_monthly": 0,
                "rate_limit": {"requests": -1, "interval": "10s", "note": "deprecated"}, "expires_at": None,
                "creator_user_id": "user_2benchCreat0rUser000000000", "workspace_id": "0df9e665-bench",
            }
        },
        sort_keys=True,
    )  # fmt: skip


def credit_log_rows(keys: list[ApiKey], per_key: int, interval: timedelta, end: datetime):
    """Rows in time order (how a real table is laid out), as {field name: value} dicts."""
    start = end - interval * (per_key - 1)
    for i in range(per_key):
        when = start + interval * i
        day = i * interval / timedelta(days=1)
        account_credits = 20000.0 + 2000.0 * int(day // 30)  # a monthly top-up
        account_usage = 30.0 * day + 0.5
        for n, key in enumerate(keys):
            if (i + n) % FAIL_EVERY == 0:
                yield {
                    "timestamp": when, "key_id": key.pk, "ok": False, "label": key.display_name,
                    "error": "OpenRouter API error (502): Bad Gateway", "http_status": 502, "duration_ms": 2100,
                }  # fmt: skip
                continue
            usage = round((1.0 + n * 0.3) * day + 0.01 * (i % 7), 6)  # uneven, rising spend
            yield {
                "timestamp": when, "key_id": key.pk, "ok": True, "label": key.label, "usage": usage,
                "credit_limit": KEY_LIMIT, "remaining": min(KEY_LIMIT - usage, account_credits - account_usage),
                "is_free_tier": False, "raw_response": raw_response(key, usage), "limit_remaining": KEY_LIMIT - usage,
                "is_management_key": False, "account_credits": account_credits, "account_usage": account_usage,
                "account_balance": account_credits - account_usage, "duration_ms": 180 + (i * 7 + n) % 90,
            }  # fmt: skip


def insert_credit_log(rows) -> None:
    fields = [f for f in CreditLog._meta.concrete_fields if not f.primary_key]
    defaults = {f.attname: f.get_default() for f in fields}
    columns = ", ".join(f'"{f.column}"' for f in fields)
    table = CreditLog._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row.get(f.attname, defaults[f.attname]) for f in fields])
        return
    adapt = connection.ops.adapt_datetimefield_value
    sql = f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(["%s"] * len(fields))})'
    batch = []
    with connection.cursor() as cursor:
        for row in rows:
            values = [row.get(f.attname, defaults[f.attname]) for f in fields]
            values[0] = adapt(values[0])  # timestamp is the first column
            batch.append(values)
            if len(batch) == CHUNK:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def make_activity(keys: list[ApiKey], days: int, today) -> None:
    rows = []
    for d in range(1, days + 1):
        day = today - timedelta(days=d)
        for model, permaslug, provider, share, per_request in MODELS:
            total = 0.0
            for n, key in enumerate(keys):
                usage = round((1.0 + n * 0.3) * share, 6)
                total += usage
                rows.append(
                    Activity(
                        date=day, api_key_hash=key.hash, model=model, model_permaslug=permaslug,
                        endpoint_id=f"{provider}-{model}", provider_name=provider, usage=usage,
                        requests=int(usage / per_request), prompt_tokens=int(usage * 1e5),
                        completion_tokens=int(usage * 3e4), final=d > 3,
                    )
                )  # fmt: skip
            rows.append(
                Activity(
                    date=day, api_key_hash="", model=model, model_permaslug=permaslug,
                    endpoint_id=f"{provider}-{model}", provider_name=provider, usage=round(total, 6),
                    requests=int(total / per_request), final=d > 3,
                )
            )  # fmt: skip
    Activity.objects.bulk_create(rows, batch_size=5000)


def make_alerts(keys: list[ApiKey], days: int, now: datetime) -> None:
    """A resolved alert every other day for a year, with its events, plus two open ones."""
    alerts, events = [], []
    for d in range(0, days, 2):
        opened = now - timedelta(days=d, hours=5)
        key = keys[d % len(keys)]
        alerts.append(
            Alert(
                key=key, condition=Alert.SPIKE, level=Level.WARNING, message="Spend spike: $14.20 today",
                value=14.2, opened_at=opened, updated_at=opened + timedelta(hours=3),
                resolved_at=opened + timedelta(hours=3), last_notified_at=opened,
            )
        )  # fmt: skip
    alerts.append(Alert(key=keys[1], condition=Alert.BALANCE, level=Level.WARNING, message="Credits low: $8.10"))
    alerts.append(Alert(key=None, condition=Alert.BUDGET, level=Level.CRITICAL, message="Projected $3,100 > $3,000"))
    alerts = Alert.objects.bulk_create(alerts)
    for alert in alerts:
        events.append(AlertEvent(alert=alert, created=alert.opened_at, kind=AlertEvent.OPENED, level=alert.level,
                                 message=alert.message))  # fmt: skip
        if alert.resolved_at:
            events.append(AlertEvent(alert=alert, created=alert.resolved_at, kind=AlertEvent.RESOLVED,
                                     level=Level.OK, previous_level=alert.level, message="Resolved"))  # fmt: skip
    AlertEvent.objects.bulk_create(events, batch_size=5000)


def fill(rows: int, key_count: int, interval_minutes: int) -> None:
    now = timezone.now()
    interval = timedelta(minutes=interval_minutes)
    end = now.replace(second=0, microsecond=0, tzinfo=UTC) - timedelta(minutes=now.minute % interval_minutes)
    per_key = rows // key_count
    days = max(1, int(per_key * interval / timedelta(days=1)))
    with transaction.atomic():
        clear()
        keys = make_keys(key_count, now)
        insert_credit_log(credit_log_rows(keys, per_key, interval, end))
        make_activity(keys, days, now.date())
        make_alerts(keys, days, now)
        # A bulk load bypasses what the monitor derives as it writes: running totals, daily figures.
        CreditLog.objects.recompute_spend_totals()
        DailyFigure.objects.rebuild()
        HourlyFigure.objects.rebuild()
