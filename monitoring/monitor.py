"""The seed's API, in Python spelling: fetch -> record -> forecast -> (evaluate -> notify).

The CLI, the django-q2 task and the dashboard's "Check now" all call into this module, so they
cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import forecast
from .logredact import redact
from .models import KEY_HASH_LENGTH, ApiKey, CreditLog, Level
from .openrouter import AccountCredits, Client, KeySnapshot, OpenRouterError, key_hash
from .schedule import SCHEDULE_NAME

logger = logging.getLogger("monitoring")

NO_BALANCE_HINT = "the key has no limit: set OPENROUTER_MANAGEMENT_KEY to read the account balance"


@dataclass
class WatchedKey:
    """A key from the environment: its secret stays in memory, only its hash is stored."""

    token: str
    name: str = ""
    is_primary: bool = False

    @property
    def hash(self) -> str:
        return key_hash(self.token)


@dataclass
class KeyStatus:
    """What one check found for one key, with the forecast and the threshold verdict."""

    key: ApiKey | None
    log: CreditLog
    level: int
    message: str
    remaining: float | None = None
    burn_rate: float | None = None
    days_left: float | None = None
    exhaustion_date: datetime | None = None
    snapshot: KeySnapshot | None = None
    notes: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.key is not None:
            return self.key.display_name
        return self.log.label or "(not set)"

    @property
    def alert(self) -> dict | None:
        if self.level == Level.OK:
            return None
        return {"level": Level(self.level).label.lower(), "message": self.message}

    def as_dict(self) -> dict:
        log = self.log
        return {
            "key": self.name,
            "key_hash": self.key.hash[:KEY_HASH_LENGTH] if self.key else None,  # as the API and the CSV
            "ok": log.ok,
            "status": Level(self.level).label,
            "message": self.message,
            "remaining": _round(self.remaining),
            "usage": _round(log.usage),
            "limit": _round(log.credit_limit),
            "limit_remaining": _round(log.limit_remaining),
            "limit_reset": log.limit_reset or None,
            "account_balance": _round(log.account_balance),
            "account_note": log.account_note or None,
            "burn_rate_per_day": _round(self.burn_rate, 4),
            "days_left": _round(self.days_left, 1),
            "exhaustion_date": self.exhaustion_date.isoformat() if self.exhaustion_date else None,
            "checked_at": log.timestamp.isoformat(),
            "error": log.error or None,
            "http_status": log.http_status,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- configuration ---------------------------------------------------------------------------


def watched_keys() -> list[WatchedKey]:
    """OPENROUTER_API_KEY first, then the named extra keys of OPENROUTER_API_KEYS."""
    keys = []
    if settings.OPENROUTER_API_KEY:
        keys.append(WatchedKey(settings.OPENROUTER_API_KEY, is_primary=True))
    for item in settings.OPENROUTER_API_KEYS.replace(",", " ").split():
        name, sep, token = item.partition("=")
        if not sep:
            name, token = "", item
        if token and token not in {k.token for k in keys}:
            keys.append(WatchedKey(token, name=name))
    return keys


def next_check_time() -> datetime | None:
    """When the scheduler will run the next check, if a schedule exists."""
    from django_q.models import Schedule

    schedule = Schedule.objects.filter(name=SCHEDULE_NAME).only("next_run").first()
    return schedule.next_run if schedule else None


# --- the seed's functions --------------------------------------------------------------------


def check_credits(api_key: str | None = None) -> KeySnapshot:
    """Fetch the key's figures from OpenRouter (GET /key). Raises OpenRouterError."""
    return Client.from_settings(api_key).get_key()


def get_remaining_credits(info: KeySnapshot, account: AccountCredits | None = None) -> float | None:
    """The headline remaining: the tighter of the key's cap left and the account balance."""
    known = [v for v in (info.limit_remaining, account.balance if account else None) if v is not None]
    return min(known) if known else None


def check_threshold(remaining: float | None, threshold: float | None = None) -> dict | None:
    """Warning below the threshold, critical at or below the minimum balance, None when fine."""
    level, message = threshold_level(remaining, threshold)
    if level == Level.OK:
        return None
    return {"level": Level(level).label.lower(), "message": message}


def threshold_level(remaining: float | None, threshold: float | None = None) -> tuple[int, str]:
    threshold = settings.OPENROUTER_CREDIT_THRESHOLD if threshold is None else threshold
    minimum = settings.OPENROUTER_MIN_BALANCE
    if remaining is None:
        return Level.UNKNOWN, f"Balance unknown: {NO_BALANCE_HINT}"
    if remaining <= minimum:
        if minimum > 0:
            return Level.CRITICAL, f"Credits at or below the minimum balance: ${remaining:.2f} (minimum ${minimum:.2f})"
        return Level.CRITICAL, f"Credits exhausted: ${remaining:.2f} remaining"
    if remaining < threshold:
        return Level.WARNING, f"Credits low: ${remaining:.2f} remaining (threshold ${threshold:.2f})"
    return Level.OK, "Credits OK"


def get_daily_burn_rate(days: float = 7, key: ApiKey | None = None, now: datetime | None = None) -> float | None:
    """Average daily spend of a key (the primary by default) over the last `days`."""
    now = now or timezone.now()
    key = key if key is not None else primary_key()
    return CreditLog.objects.burn_rate(key, now, days)  # forecast.burn_rate_per_day, summed by the database


def get_days_until_exhaustion(remaining: float | None, days: float = 7, key: ApiKey | None = None) -> float | None:
    return forecast.days_until_exhaustion(remaining, get_daily_burn_rate(days, key))


def get_credit_history(days: float = 30, key: ApiKey | None = None) -> list[CreditLog]:
    """Logged checks of the last `days`, oldest first (all keys unless one is given)."""
    rows = CreditLog.objects.since(timezone.now() - timedelta(days=days)).select_related("key")
    if key is not None:
        rows = rows.filter(key=key)
    return list(rows.order_by("timestamp", "id"))


def primary_key() -> ApiKey | None:
    return ApiKey.objects.filter(is_primary=True).first()


# --- the check itself ------------------------------------------------------------------------


def fetch_account(now: datetime) -> tuple[AccountCredits | None, str]:
    """The account balance, or None with the reason it is unavailable."""
    token = settings.OPENROUTER_MANAGEMENT_KEY or settings.OPENROUTER_API_KEY
    if not token:
        return None, "no key configured"
    try:
        credits = Client.from_settings(token).get_credits()
    except OpenRouterError as exc:
        if exc.status in (401, 403) and not settings.OPENROUTER_MANAGEMENT_KEY:
            return None, "set OPENROUTER_MANAGEMENT_KEY to read the account balance"
        return None, f"account balance unavailable: {exc.message}"
    if credits.total_credits == 0 and credits.total_usage == 0 and not settings.OPENROUTER_MANAGEMENT_KEY:
        # An inference key may get a silent 0/0 instead of a 403: that is "unavailable", not "empty".
        return None, "set OPENROUTER_MANAGEMENT_KEY to read the account balance"
    return credits, ""


def _upsert_key(watched: WatchedKey, now: datetime, snapshot: KeySnapshot | None = None) -> ApiKey:
    key, _ = ApiKey.objects.get_or_create(hash=watched.hash, defaults={"first_seen": now})
    key.last_seen = now
    key.is_primary = watched.is_primary
    if watched.name:
        key.name = watched.name
    if snapshot is not None:
        key.label = snapshot.label
        key.is_management_key = snapshot.is_management_key
        key.credit_limit = snapshot.limit
        key.limit_reset = snapshot.limit_reset or ""
        key.expires_at = snapshot.expires_at
    key.save()
    return key


def _raw(payload: dict) -> str:
    return redact(json.dumps(payload, sort_keys=True))[:20000]


def record_snapshot(
    key: ApiKey, snapshot: KeySnapshot, account: AccountCredits | None, account_note: str, now: datetime, ms: int
) -> CreditLog:
    return CreditLog.objects.create(
        timestamp=now,
        key=key,
        ok=True,
        label=snapshot.label,
        usage=snapshot.usage,
        credit_limit=snapshot.limit,
        remaining=get_remaining_credits(snapshot, account),
        is_free_tier=snapshot.is_free_tier,
        rate_limit=json.dumps(snapshot.rate_limit) if snapshot.rate_limit else "",
        raw_response=_raw(snapshot.raw),
        limit_remaining=snapshot.limit_remaining,
        limit_reset=snapshot.limit_reset or "",
        usage_daily=snapshot.usage_daily,
        usage_weekly=snapshot.usage_weekly,
        usage_monthly=snapshot.usage_monthly,
        byok_usage=snapshot.byok_usage,
        is_management_key=snapshot.is_management_key,
        account_credits=account.total_credits if account else None,
        account_usage=account.total_usage if account else None,
        account_balance=account.balance if account else None,
        account_note="" if account else account_note[:200],
        duration_ms=ms,
        spend_total=CreditLog.objects.next_spend_total(key, now, snapshot.usage),
    )


def record_failure(key: ApiKey | None, error: OpenRouterError, now: datetime, ms: int | None = None) -> CreditLog:
    return CreditLog.objects.create(
        timestamp=now,
        key=key,
        ok=False,
        label=key.display_name if key else "",
        error=redact(error.message)[:1000],
        http_status=error.status,
        duration_ms=ms,
    )


def status_for(key: ApiKey | None, log: CreditLog, now: datetime, threshold: float | None = None) -> KeyStatus:
    """Forecast and threshold verdict for one logged check."""
    if not log.ok:
        return KeyStatus(key, log, Level.UNKNOWN, log.error)
    window = settings.BURN_RATE_WINDOW_DAYS
    from .account import activity_burn_rate

    # Running spend totals at the window's ends: two index look-ups, never the window's 2,016 rows.
    burn_rate = CreditLog.objects.burn_rate(key, now, window, newest=log)
    if burn_rate is None:  # too few logged checks: the stored activity, as burn_rate_with_backfill does
        burn_rate = activity_burn_rate(key, now, window)
    days_left = forecast.days_until_exhaustion(log.remaining, burn_rate)
    level, message = threshold_level(log.remaining, threshold)
    if log.remaining is None and log.account_note and "management" not in log.account_note:
        message = f"Balance unknown: {log.account_note}"
    return KeyStatus(
        key,
        log,
        level,
        message,
        remaining=log.remaining,
        burn_rate=burn_rate,
        days_left=days_left,
        exhaustion_date=forecast.exhaustion_date(now, days_left),
    )


def check_all(threshold: float | None = None, now: datetime | None = None) -> list[KeyStatus]:
    """Check every watched key now, log each result (failures too), and forecast."""
    now = now or timezone.now()
    keys = watched_keys()
    if not keys and not settings.OPENROUTER_MANAGEMENT_KEY:
        error = OpenRouterError("OPENROUTER_API_KEY not set: add it to .env (see .env.example) or the environment")
        return [KeyStatus(None, record_failure(None, error, now), Level.UNKNOWN, error.message)]
    account, account_note = fetch_account(now)
    statuses = []
    for watched in keys:
        started = time.monotonic()
        try:
            snapshot = check_credits(watched.token)
        except OpenRouterError as exc:
            ms = int((time.monotonic() - started) * 1000)
            key = _upsert_key(watched, now)
            logger.error("OpenRouter check failed for %s: %s", key.display_name, exc.message)
            statuses.append(status_for(key, record_failure(key, exc, now, ms), now, threshold))
            continue
        ms = int((time.monotonic() - started) * 1000)
        key = _upsert_key(watched, now, snapshot)
        log = record_snapshot(key, snapshot, account, account_note, now, ms)
        status = status_for(key, log, now, threshold)
        status.snapshot = snapshot
        statuses.append(status)
    if settings.OPENROUTER_MANAGEMENT_KEY:
        from .account import check_listed_keys

        statuses += check_listed_keys(now, {w.hash for w in keys}, account, account_note, threshold)
        for status in statuses:  # the listing may have just named a key checked directly
            if status.key is not None and not status.key.name:
                status.key.refresh_from_db(fields=["name"])
    for status in statuses:
        log_level = logging.INFO if status.level == Level.OK else logging.WARNING
        logger.log(log_level, "%s: %s", status.name, status.message)
    return statuses


def overall_level(statuses: list[KeyStatus]) -> int:
    """The worst level: CRITICAL > UNKNOWN > WARNING > OK for display, as a plugin exit code."""
    from .models import SEVERITY

    return max((s.level for s in statuses), key=lambda level: SEVERITY[Level(level)], default=Level.UNKNOWN)


def monitor_credits(threshold: float | None = None, now: datetime | None = None) -> dict:
    """Check, log and forecast; the primary key's figures as the seed returns them."""
    return seed_summary(check_all(threshold, now))


def seed_summary(statuses: list[KeyStatus]) -> dict:
    """The seed's return value (remaining, alert, burn rate, days left, key info), plus every key."""
    main = statuses[0]
    return {
        "remaining": main.remaining,
        "alert": main.alert,
        "burn_rate": main.burn_rate,
        "days_left": main.days_left,
        "key_info": main.as_dict(),
        "keys": [s.as_dict() for s in statuses],
        "status": Level(overall_level(statuses)).label,
    }


def run_monitor(now: datetime | None = None) -> list[KeyStatus]:
    """The scheduled job: check and log every key, sync activity, evaluate alerts, notify.

    OpenRouter and notification failures are logged and recorded, never raised: a failed check is a
    row (and, repeated, an alert), a failed delivery is a row retried next run.
    """
    from . import alerts, notify

    now = now or timezone.now()
    statuses = check_all(now=now)
    if settings.OPENROUTER_MANAGEMENT_KEY:
        from .account import sync_activity

        try:
            sync_activity(now)
        except OpenRouterError as exc:
            logger.error("Activity sync failed: %s", exc.message)
        except Exception:
            logger.exception("Activity sync failed")
        from .account import backfill_forecasts

        backfill_forecasts(statuses, now)  # the first run forecasts from the activity just synced
    evaluation_error = None
    try:
        alerts.evaluate(statuses, now)
    except Exception as exc:  # still deliver what is pending, then let the task show the failure
        logger.exception("Alert evaluation failed")
        evaluation_error = exc
    try:
        notify.deliver_pending(now)
    except Exception:
        logger.exception("Notification delivery failed")
    if evaluation_error is not None:
        raise evaluation_error
    return statuses


def display_credits(threshold: float | None = None, verbose: bool = False, stdout=None) -> dict:
    """Check, log, and print the seed's report; returns what monitor_credits returns."""
    import sys

    from .report import format_report

    statuses = check_all(threshold)
    (stdout or sys.stdout).write(format_report(statuses, verbose, next_check_time()))
    return seed_summary(statuses)
