"""The account-wide view with a management key: every key (GET /keys) and spend by model (GET /activity).

Keys are known by their hash only; the management key itself is never stored, logged or shown.
Activity rows are kept forever, so the history outlives OpenRouter's 30-day window.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum

from . import alerts, forecast
from .logredact import redact
from .models import Activity, Alert, ApiKey, CreditLog, Level, chain_total
from .openrouter import AccountCredits, Client, ListedKey, OpenRouterError, key_hash

logger = logging.getLogger("monitoring")

LISTING_LABEL = "all keys (management)"
ACCOUNT_HASH = ""  # Activity.api_key_hash of the account-wide rows
API_DAYS = 30  # /activity serves the last 30 completed UTC days
FINAL_AFTER_DAYS = 3  # OpenRouter may still revise a day's rows for this long; older days are final
TOPUP_CHECKS = 3  # consecutive checks below the threshold without a purchase before TOPUP_MISSED
ACTIVITY_FIELDS = [
    "model_permaslug",
    "provider_name",
    "usage",
    "byok_usage_inference",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
]
SUMMED_FIELDS = ACTIVITY_FIELDS[2:]


def _management_client() -> Client:
    return Client.from_settings(settings.OPENROUTER_MANAGEMENT_KEY)


def _utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()


def _reporting_zone() -> ZoneInfo:
    return ZoneInfo(settings.CREDITMON_TIME_ZONE)


# --- every key: GET /keys ---------------------------------------------------------------------


def check_listed_keys(now, checked_hashes, account, account_note, threshold=None) -> list:
    """List every key with the management key, upsert and log each one, and forecast.

    Keys in `checked_hashes` were already checked and logged directly this run: they only get
    their name from the listing. A failed listing is logged as one failed row (UNKNOWN).
    """
    from .monitor import _raw, status_for

    started = time.monotonic()
    include = settings.OPENROUTER_LIST_DISABLED_KEYS
    try:
        listed = _management_client().list_keys(include_disabled=include, include_expired=include)
    except OpenRouterError as exc:
        logger.error("Listing keys with the management key failed: %s", exc.message)
        log = CreditLog.objects.create(
            timestamp=now,
            key=None,
            ok=False,
            label=LISTING_LABEL,
            error=redact(exc.message)[:1000],
            http_status=exc.status,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        return [status_for(None, log, now, threshold)]
    management_hash = key_hash(settings.OPENROUTER_MANAGEMENT_KEY)
    listed = [item for item in listed if item.hash != management_hash]
    with transaction.atomic():
        keys = _upsert_listed(listed, set(checked_hashes), now)
        # Each key's previous reading, in one query, to chain the running spend totals burn rates read.
        readings = CreditLog.objects.filter(ok=True, usage__isnull=False)
        ids = [keys[item.hash].pk for item in listed if item.hash not in checked_hashes]
        previous = {
            key_id: (log.timestamp, log.usage, log.spend_total)
            for key_id, log in readings.latest_by_key(ApiKey.objects.filter(pk__in=ids)).items()
        }
        logs = [
            CreditLog(
                timestamp=now,
                key=keys[item.hash],
                ok=True,
                label=item.label or item.name,
                usage=item.usage,
                credit_limit=item.limit,
                remaining=_tighter(item.limit_remaining, account),
                raw_response=_raw(item.raw),
                limit_remaining=item.limit_remaining,
                limit_reset=item.limit_reset or "",
                usage_daily=item.usage_daily,
                usage_weekly=item.usage_weekly,
                usage_monthly=item.usage_monthly,
                byok_usage=_optional_number(item.raw.get("byok_usage")),
                is_management_key=False,
                account_credits=account.total_credits if account else None,
                account_usage=account.total_usage if account else None,
                account_balance=account.balance if account else None,
                account_note="" if account else account_note[:200],
                spend_total=chain_total(previous.get(keys[item.hash].pk), now, item.usage)
                if item.usage is not None
                else None,
            )
            for item in listed
            if item.hash not in checked_hashes
        ]
        CreditLog.objects.bulk_create(logs)
    return [status_for(log.key, log, now, threshold) for log in logs]


def _upsert_listed(listed: list[ListedKey], checked: set[str], now: datetime) -> dict[str, ApiKey]:
    """Create or update one ApiKey per listed key (two queries plus one bulk write each way)."""
    existing = {key.hash: key for key in ApiKey.objects.filter(hash__in=[item.hash for item in listed])}
    new, changed = [], []
    for item in listed:
        key = existing.get(item.hash)
        if item.hash in checked:
            # Configured keys keep their own figures (from /key); the listing only names them.
            if key is not None and not key.name and item.name:
                key.name = item.name
                key.created_at = key.created_at or item.created_at
                changed.append(key)
            continue
        if key is None:
            key = ApiKey(hash=item.hash, first_seen=now)
            new.append(key)
        else:
            changed.append(key)
        key.source = ApiKey.SOURCE_LISTED
        key.name = item.name
        key.label = item.label
        key.disabled = item.disabled
        key.credit_limit = item.limit
        key.limit_reset = item.limit_reset or ""
        key.expires_at = item.expires_at
        key.created_at = item.created_at
        key.last_seen = now
        existing[item.hash] = key
    ApiKey.objects.bulk_create(new)
    fields = ["source", "name", "label", "disabled", "credit_limit", "limit_reset", "expires_at", "created_at"]
    ApiKey.objects.bulk_update(changed, fields + ["last_seen"])
    if new and new[0].pk is None:  # backends that do not return ids from bulk_create
        existing.update({key.hash: key for key in ApiKey.objects.filter(hash__in=[k.hash for k in new])})
    return existing


def _tighter(limit_remaining: float | None, account: AccountCredits | None) -> float | None:
    known = [v for v in (limit_remaining, account.balance if account else None) if v is not None]
    return min(known) if known else None


def _optional_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# --- spend by model: GET /activity ------------------------------------------------------------


def sync_activity(now, backfill: bool = False) -> int:
    """Fetch /activity per known key and account-wide, store it idempotently; return rows written.

    A target with nothing stored (first run, new key) or a gap gets the whole 30 days in one
    request; otherwise only the recent days that are not final yet, one request per day. A key
    whose usage has not moved since the last complete sync is skipped: it has nothing new.
    The account-wide target goes last, so its newest `fetched_at` marks the last complete sync.
    """
    client = _management_client()
    today = _utc_today(now)
    recent = [today - timedelta(days=n) for n in range(1, FINAL_AFTER_DAYS + 2)]  # incl. the newly final day
    stored = _stored_days(recent[-1])
    last_sync = (
        Activity.objects.filter(api_key_hash=ACCOUNT_HASH).aggregate(last=Max("fetched_at"))["last"]
        if not backfill
        else None
    )
    management_hash = key_hash(settings.OPENROUTER_MANAGEMENT_KEY)
    keys = ApiKey.objects.exclude(is_management_key=True).exclude(hash=management_hash).order_by("id")
    written = 0
    for key in keys:
        idle = last_sync is not None and _idle_since(key, last_sync)
        plan = _plan(stored.get(key.hash), recent, backfill, idle)
        try:
            written += _fetch(client, key.hash, plan, now, today, backfill)
        except OpenRouterError as exc:
            if exc.status == 404:  # deleted since it was listed: its stored history stays
                logger.info("Activity of %s not found (deleted key?): %s", key.display_name, exc.message)
                continue
            raise
    plan = _plan(stored.get(ACCOUNT_HASH), recent, backfill, False)
    written += _fetch(client, ACCOUNT_HASH, plan, now, today, backfill)
    return written


def _stored_days(since: date) -> dict[str, dict]:
    """Per target hash: its newest stored date, and which recent days are stored / final."""
    info: dict[str, dict] = {}
    for key_hash_, newest in Activity.objects.values_list("api_key_hash").annotate(newest=Max("date")):
        info[key_hash_] = {"newest": newest, "days": set(), "final": set()}
    recent_rows = Activity.objects.filter(date__gte=since).values_list("api_key_hash", "date", "final").distinct()
    for key_hash_, day, final in recent_rows:
        info[key_hash_]["days"].add(day)
        if final:
            info[key_hash_]["final"].add(day)
    return info


def _plan(info: dict | None, recent: list[date], backfill: bool, idle: bool) -> list[date | None]:
    """What to fetch for one target: [None] = the whole 30 days, else the days to re-fetch."""
    if backfill:
        return [None]
    if info is None:
        return [] if idle else [None]
    pending = [day for day in recent if day not in info["final"]]
    if idle:  # nothing new can appear; stored rows are still re-read until final
        return [day for day in pending if day in info["days"]]
    if info["newest"] < recent[-1]:
        return [None]  # a gap (the monitor was off, or the key was quiet): catch up in one request
    return pending


def _idle_since(key: ApiKey, last_sync: datetime) -> bool:
    """The key's usage has not moved since a check made before the last complete sync."""
    logs = CreditLog.objects.successful().for_key(key).exclude(usage=None)
    before = logs.filter(timestamp__lte=last_sync).order_by("-timestamp", "-id").values_list("usage", flat=True)
    latest = logs.order_by("-timestamp", "-id").values_list("usage", flat=True)
    before, latest = before.first(), latest.first()
    return before is not None and latest is not None and abs(latest - before) < 1e-9


def _fetch(client: Client, target: str, plan: list[date | None], now: datetime, today: date, backfill: bool) -> int:
    written = 0
    for day in plan:
        rows = client.get_activity(date=day.isoformat() if day else None, api_key_hash=target or None)
        written += store_activity(rows, target, now, today, skip_final=day is None and not backfill)
    return written


def store_activity(rows: list[dict], target: str, now: datetime, today: date, skip_final: bool = False) -> int:
    """Upsert /activity rows on (date, api_key_hash, endpoint_id, model); returns rows written."""
    merged: dict[tuple, Activity] = {}
    for row in rows:
        try:
            day = date.fromisoformat(row["date"][:10])
        except ValueError:
            raise OpenRouterError("OpenRouter sent an unexpected response: an activity `date` is not a date") from None
        row = {**row, "endpoint_id": row["endpoint_id"][:100], "provider_name": row["provider_name"][:100]}
        slot = (day, row["endpoint_id"], row["model"])
        if slot in merged:  # never two rows for one slot: one upsert per unique row
            for name in SUMMED_FIELDS:
                setattr(merged[slot], name, getattr(merged[slot], name) + row[name])
            continue
        merged[slot] = Activity(
            date=day,
            api_key_hash=target,
            model=row["model"],
            endpoint_id=row["endpoint_id"],
            fetched_at=now,
            final=day < today - timedelta(days=FINAL_AFTER_DAYS),
            **{name: row[name] for name in ACTIVITY_FIELDS},
        )
    if skip_final and merged:
        # A whole-window fetch does not rewrite days already stored as final.
        final = set(Activity.objects.filter(api_key_hash=target, final=True).values_list("date", flat=True).distinct())
        merged = {slot: row for slot, row in merged.items() if slot[0] not in final}
    Activity.objects.bulk_create(
        merged.values(),
        update_conflicts=True,
        unique_fields=["date", "api_key_hash", "endpoint_id", "model"],
        update_fields=ACTIVITY_FIELDS + ["fetched_at", "final"],
        batch_size=500,
    )
    return len(merged)


# --- burn rate from activity (known from day one) ----------------------------------------------


def activity_burn_rate(key: ApiKey | None, now: datetime, window_days: float) -> float | None:
    """Average daily spend of a key from its Activity rows over the completed UTC days in the window.

    None when no activity was ever stored for the key (not synced: unknown, not zero).
    """
    if key is None or not Activity.objects.filter(api_key_hash=key.hash).exists():
        return None
    return _activity_rate(key.hash, now, window_days, key.created_at)


def _activity_rate(target: str, now: datetime, window_days: float, created_at: datetime | None = None) -> float | None:
    today = _utc_today(now)
    last = today - timedelta(days=1)
    first = today - timedelta(days=max(1, int(window_days)))
    if created_at is not None:
        # A key made three days ago has three days of spend, not seven.
        first = max(first, created_at.astimezone(UTC).date())
    totals = dict(
        Activity.objects.filter(api_key_hash=target)
        .between(first, last)
        .values_list("date")
        .annotate(total=Sum("usage"))
        .values_list("date", "total")
    )
    return forecast.average_per_day(totals, first, last)


def burn_rate_with_backfill(key: ApiKey | None, samples, now: datetime, window_days: float) -> float | None:
    """The burn rate from logged checks when there are enough, else from the stored activity."""
    rate = forecast.burn_rate_per_day(samples, now, window_days)
    if rate is not None:
        return rate
    return activity_burn_rate(key, now, window_days)


def backfill_forecasts(statuses, now: datetime) -> None:
    """Fill the burn rate and days left of checks that had too few log entries, from the activity
    just synced: run after sync_activity, so even the first run forecasts."""
    window = settings.BURN_RATE_WINDOW_DAYS
    for status in statuses:
        if not status.log.ok or status.burn_rate is not None:
            continue
        rate = activity_burn_rate(status.key, now, window)
        if rate is not None:
            status.burn_rate = rate
            status.days_left = forecast.days_until_exhaustion(status.remaining, rate)
            status.exhaustion_date = forecast.exhaustion_date(now, status.days_left)


# --- alert conditions --------------------------------------------------------------------------


def account_conditions(statuses, now) -> list[alerts.Condition]:
    """The account-wide conditions: key limits, monthly budget, expiry, model spikes, missed top-ups.

    Every evaluated condition is returned, OK ones too, so their open alerts resolve.
    """
    conditions = []
    for status in statuses:
        if status.key is None:
            continue
        if status.log.ok:
            conditions.append(key_limit_condition(status.key, status.log))
        conditions.append(expiry_condition(status.key, now))
    conditions.append(budget_condition(now))
    conditions += model_spike_conditions(now)
    conditions.append(topup_missed_condition())
    return conditions


def key_limit_condition(key: ApiKey, log: CreditLog) -> alerts.Condition:
    limit, left = log.credit_limit, log.limit_remaining
    if not limit or limit <= 0 or left is None:
        return alerts.Condition(key, Alert.KEY_LIMIT, Level.OK, f"{key.display_name} has no limit of its own")
    used = (limit - left) / limit * 100
    period = {"daily": "day", "weekly": "week", "monthly": "month"}.get(log.limit_reset or "")
    window = f" this {period}" if period else ""
    message = f"{key.display_name} used {used:.0f}% of its ${limit:.2f} limit{window} (${left:.2f} left)"
    if used >= settings.KEY_LIMIT_CRITICAL_PERCENT:
        return alerts.Condition(key, Alert.KEY_LIMIT, Level.CRITICAL, message, used)
    if used >= settings.KEY_LIMIT_WARNING_PERCENT:
        return alerts.Condition(key, Alert.KEY_LIMIT, Level.WARNING, message, used)
    return alerts.Condition(key, Alert.KEY_LIMIT, Level.OK, message, used)


def expiry_condition(key: ApiKey, now: datetime) -> alerts.Condition:
    if key.expires_at is None or key.disabled:
        return alerts.Condition(key, Alert.EXPIRY, Level.OK, f"{key.display_name} does not expire")
    days = (key.expires_at - now).total_seconds() / 86400
    when = key.expires_at.astimezone(_reporting_zone()).strftime("%Y-%m-%d %H:%M %Z")
    if days <= 0:
        return alerts.Condition(key, Alert.EXPIRY, Level.CRITICAL, f"{key.display_name} expired on {when}", days)
    message = f"{key.display_name} expires on {when} (in {days:.1f} days)"
    if days <= 1:
        return alerts.Condition(key, Alert.EXPIRY, Level.CRITICAL, message, days)
    if days <= settings.KEY_EXPIRY_WARNING_DAYS:
        return alerts.Condition(key, Alert.EXPIRY, Level.WARNING, message, days)
    return alerts.Condition(key, Alert.EXPIRY, Level.OK, message, days)


def month_to_date_spend(now: datetime) -> float:
    """Account spend this month: stored activity for the completed days, the logged checks for today."""
    tz = _reporting_zone()
    month_start, _ = forecast.month_bounds(now, tz)
    local_today = now.astimezone(tz).date()
    # Activity days are UTC buckets: counted by their date, up to the reporting zone's yesterday.
    completed = (
        Activity.objects.filter(
            api_key_hash=ACCOUNT_HASH, date__gte=month_start.date(), date__lt=local_today
        ).aggregate(total=Sum("usage"))["total"]
        or 0.0
    )
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    # The account's total_usage only grows: today's spend is the last reading less the last one before midnight.
    today = CreditLog.objects.filter(timestamp__gte=midnight, timestamp__lte=now)
    latest = _account_usage_reading(today, "-timestamp")
    if latest is None:
        return completed
    # The last reading before midnight, or the first of today when the log starts today.
    before = _account_usage_reading(CreditLog.objects.filter(timestamp__lt=midnight), "-timestamp")
    before = before or _account_usage_reading(today, "timestamp")
    return completed + forecast.spend_between(before[1], latest[1])


def account_burn_rate(now: datetime) -> float | None:
    window = settings.BURN_RATE_WINDOW_DAYS
    # total_usage only grows, so the window's first and last readings give its spend (two index look-ups
    # instead of a week of rows).
    inside = CreditLog.objects.filter(timestamp__gte=now - timedelta(days=window), timestamp__lte=now)
    ends = (_account_usage_reading(inside, "timestamp"), _account_usage_reading(inside, "-timestamp"))
    samples = [reading for reading in ends if reading]
    rate = forecast.burn_rate_per_day(samples, now, window)
    if rate is None and Activity.objects.filter(api_key_hash=ACCOUNT_HASH).exists():
        rate = _activity_rate(ACCOUNT_HASH, now, window)
    return rate


def _account_usage_reading(rows, order: str) -> tuple[datetime, float] | None:
    """The first or last (time, account total_usage) reading among the rows."""
    readings = rows.filter(ok=True).exclude(account_usage=None).order_by(order)
    return readings.values_list("timestamp", "account_usage").first()


def budget_condition(now: datetime) -> alerts.Condition:
    budget = settings.MONTHLY_BUDGET
    if budget <= 0:
        return alerts.Condition(None, Alert.BUDGET, Level.OK, "No monthly budget set")
    spent = month_to_date_spend(now)
    projected = forecast.projected_month_spend(spent, account_burn_rate(now), now, _reporting_zone())
    if spent > budget:
        return alerts.Condition(
            None, Alert.BUDGET, Level.CRITICAL, f"Monthly budget exceeded: ${spent:.2f} spent of ${budget:.2f}", spent
        )
    if projected is not None and projected > budget:
        message = f"Projected month-end spend ${projected:.2f} exceeds the ${budget:.2f} budget (${spent:.2f} so far)"
        return alerts.Condition(None, Alert.BUDGET, Level.WARNING, message, projected)
    outlook = f", projected ${projected:.2f}" if projected is not None else ""
    return alerts.Condition(
        None, Alert.BUDGET, Level.OK, f"${spent:.2f} of ${budget:.2f} spent this month{outlook}", projected
    )


def model_spike_conditions(now: datetime) -> list[alerts.Condition]:
    """Yesterday's (last completed UTC day) spend per model against its average over the 7 days before."""
    yesterday = _utc_today(now) - timedelta(days=1)
    week_start = yesterday - timedelta(days=7)
    rows = (
        Activity.objects.filter(api_key_hash=ACCOUNT_HASH)
        .between(week_start, yesterday)
        .values_list("model", "date")
        .annotate(total=Sum("usage"))
        .values_list("model", "date", "total")
    )
    spend: dict[str, dict[date, float]] = {}
    for model, day, total in rows:
        spend.setdefault(model, {})[day] = total
    open_subjects = Alert.objects.open().filter(condition=Alert.MODEL_SPIKE).values_list("subject", flat=True)
    conditions = []
    for model in sorted(set(spend) | set(open_subjects)):
        days = spend.get(model, {})
        last = days.get(yesterday, 0.0)
        average = forecast.average_per_day(days, week_start, yesterday - timedelta(days=1))
        if forecast.is_spike(last, average, settings.SPIKE_FACTOR, settings.SPIKE_MIN_USD):
            message = f"{model} spent ${last:.2f} on {yesterday}, {last / max(average, 0.01):.1f}x its 7-day average"
            message += f" of ${average:.2f}/day"
            conditions.append(alerts.Condition(None, Alert.MODEL_SPIKE, Level.WARNING, message, last, subject=model))
        else:
            message = f"{model} spent ${last:.2f} on {yesterday} (7-day average ${average:.2f}/day)"
            conditions.append(alerts.Condition(None, Alert.MODEL_SPIKE, Level.OK, message, last, subject=model))
    return conditions


def topup_missed_condition() -> alerts.Condition:
    if not settings.AUTO_TOPUP_EXPECTED:  # without auto top-up a falling balance is the balance alert's job
        return alerts.Condition(None, Alert.TOPUP_MISSED, Level.OK, "No auto top-up expected (AUTO_TOPUP_EXPECTED)")
    threshold = settings.OPENROUTER_CREDIT_THRESHOLD
    rows = (
        CreditLog.objects.successful()
        .exclude(account_balance=None)
        .exclude(account_credits=None)
        .values_list("timestamp", "account_balance", "account_credits")
        .order_by("-timestamp")
        .distinct()[:TOPUP_CHECKS]
    )
    readings = [(balance, credits) for _, balance, credits in reversed(rows)]
    if forecast.topup_missed(readings, threshold, TOPUP_CHECKS):
        message = (
            f"No top-up: the account balance fell to ${readings[-1][0]:.2f} over {TOPUP_CHECKS} checks below "
            f"${threshold:.2f} and no credits were added (is auto top-up on?)"
        )
        return alerts.Condition(None, Alert.TOPUP_MISSED, Level.WARNING, message, readings[-1][0])
    return alerts.Condition(None, Alert.TOPUP_MISSED, Level.OK, "Account credits topped up or balance not falling")
