"""The seed's API, in Python spelling: fetch -> record -> forecast -> (evaluate -> notify).

The CLI, the django-q2 task and the dashboard's "Check now" all call into this module, so they
cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import account as account_room
from . import agent_tasks, agent_webhook, alerts, catalogue, forecast, notify, status
from .logredact import redact
from .models import ApiKey, CreditLog, DailyFigure, Level, LimitReading, chain_total
from .openrouter import (
    RUN_DEADLINE,
    AccountCredits,
    Client,
    KeySnapshot,
    ListedKey,
    OpenRouterError,
    key_hash,
    past_deadline_error,
    run_deadline,
    submit_in_context,
)
from .report import format_report

logger = logging.getLogger("monitoring")

LISTING_LABEL = "all keys (management)"
RUN_LABEL = "monitoring run"  # a failed row of the run itself (timed out, killed), not of one key


@dataclass
class WatchedKey:
    """A key from the environment: its secret stays in memory, only its hash is stored."""

    token: str
    name: str = ""
    is_primary: bool = False

    @property
    def hash(self) -> str:
        return key_hash(self.token)


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
    return status.schedule_figures()[0]


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
    level, message = status.balance_level(remaining, threshold)
    if level == Level.OK:
        return None
    return {"level": Level(level).label.lower(), "message": message}


def get_daily_burn_rate(days: float = 7, key: ApiKey | None = None, now: datetime | None = None) -> float | None:
    """Average daily spend of a key (the primary by default) over the last `days`."""
    now = now or timezone.now()
    key = key if key is not None else primary_key()
    if key is None:
        return None
    windows = {"w": days}
    return status.key_rates(status.annotated_keys([key], now, windows), now, windows)[key.pk]["w"].rate


def get_days_until_exhaustion(remaining: float | None, days: float = 7, key: ApiKey | None = None) -> float | None:
    return forecast.days_until_exhaustion(remaining, get_daily_burn_rate(days, key))


def get_credit_history(days: float = 30, key: ApiKey | None = None) -> list[CreditLog]:
    """Logged checks of the last `days`, oldest first (all keys unless one is given)."""
    rows = CreditLog.objects.since(timezone.now() - timedelta(days=days)).select_related("key")
    if key is not None:
        rows = rows.filter(key=key)
    return list(rows.order_by("timestamp", "id"))


def primary_key() -> ApiKey | None:
    return ApiKey.objects.watched().filter(is_primary=True).first()


# --- recording a check -----------------------------------------------------------------------


def fetch_account() -> tuple[AccountCredits | None, str]:
    """The account balance, or None with the reason it is unavailable."""
    token = settings.OPENROUTER_MANAGEMENT_KEY or settings.OPENROUTER_API_KEY
    if not token:
        return None, "no key configured"
    try:
        credits = Client.from_settings(token).get_credits()
    except OpenRouterError as exc:
        if exc.status in (401, 403) and not settings.OPENROUTER_MANAGEMENT_KEY:
            return None, "set OPENROUTER_MANAGEMENT_KEY to read the account balance"
        return None, f"{status.FETCH_FAILED}: {exc.message}"
    if credits.total_credits == 0 and credits.total_usage == 0 and not settings.OPENROUTER_MANAGEMENT_KEY:
        # An inference key may get a silent 0/0 instead of a 403: that is "unavailable", not "empty".
        return None, "set OPENROUTER_MANAGEMENT_KEY to read the account balance"
    return credits, ""


def _upsert_key(watched: WatchedKey, now: datetime, snapshot: KeySnapshot | None = None) -> ApiKey:
    key, _ = ApiKey.objects.get_or_create(hash=watched.hash, defaults={"first_seen": now})
    key.last_seen = now
    key.is_primary = watched.is_primary
    key.source = ApiKey.SOURCE_CONFIGURED  # configured now, even if a listing found it first
    key.retired_at, key.retired_reason = None, ""
    if watched.name:
        key.name = watched.name
    if snapshot is not None:
        key.label = snapshot.label
        key.is_management_key = snapshot.is_management_key
        key.credit_limit = snapshot.limit
        key.limit_reset = snapshot.limit_reset or ""
        key.expires_at = snapshot.expires_at
        key.workspace_id = snapshot.workspace_id
    key.save()
    return key


def raw_json(payload: dict) -> str:
    return redact(json.dumps(payload, sort_keys=True))[:20000]


def previous_reading(key: ApiKey) -> tuple | None:
    """(timestamp, usage, spend_total) of the key's newest reading."""
    rows = CreditLog.objects.filter(key=key, ok=True, usage__isnull=False)
    return rows.order_by("-timestamp", "-usage", "-id").values_list("timestamp", "usage", "spend_total").first()


def in_order(when: datetime, previous: tuple | None, key: ApiKey | None) -> datetime:
    """A reading is never stored before the key's newest one (the clock stepped back): it is placed just
    after it, so a later reading can never look like a counter reset or a spike."""
    if previous is None or previous[0] <= when:
        return when
    logger.warning(
        "The clock is behind %s's newest reading by %.0f s: the reading is stored just after it",
        key.display_name if key else "the key",
        (previous[0] - when).total_seconds(),
    )
    return previous[0] + timedelta(microseconds=1)


def record_snapshot(
    key: ApiKey, snapshot: KeySnapshot, account: AccountCredits | None, account_note: str, now: datetime, ms: int
) -> CreditLog:
    previous = previous_reading(key)
    when = in_order(now, previous, key)
    free = snapshot.free_requests
    log = CreditLog.objects.create(
        timestamp=when,
        key=key,
        ok=True,
        label=snapshot.label,
        usage=snapshot.usage,
        credit_limit=snapshot.limit,
        remaining=get_remaining_credits(snapshot, account),
        is_free_tier=snapshot.is_free_tier,
        rate_limit=json.dumps(snapshot.rate_limit) if snapshot.rate_limit else "",
        raw_response=raw_json(snapshot.raw),
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
        spend_total=chain_total(previous, when, snapshot.usage),
        free_limit=free.limit if free else None,
        free_remaining=free.remaining if free else None,
        free_used=free.used if free else None,
        budget_layers=sum(1 for layer in snapshot.budgets if layer.scope != "key_limit")
        if "budgets" in (snapshot.raw.get("data") or {})
        else None,
    )
    record_layers(log, snapshot)
    return log


def record_layers(log: CreditLog, snapshot: KeySnapshot) -> None:
    """Every budget layer of the answer, in enforcement order, tied to the check (a history per layer)."""
    effective = snapshot.effective_budget.identity if snapshot.effective_budget else None
    LimitReading.objects.bulk_create(
        LimitReading(
            log=log,
            key=log.key,
            timestamp=log.timestamp,
            position=n,
            scope=layer.scope,
            budget_id=layer.budget_id or "",
            guardrail_id=layer.guardrail_id or "",
            include_byok=layer.include_byok,
            limit_usd=layer.limit_usd,
            spend_usd=layer.spend_usd,
            remaining_usd=layer.remaining_usd,
            reset_interval=layer.reset_interval or "",
            resets_at=layer.resets_at,
            effective=layer.identity == effective,
        )
        for n, layer in enumerate(snapshot.budgets)
    )


def record_failure(
    key: ApiKey | None, error: OpenRouterError, now: datetime, ms: int | None = None, label: str = ""
) -> CreditLog:
    newest = CreditLog.objects.for_key(key).order_by("-timestamp", "-id").values_list("timestamp").first()
    return CreditLog.objects.create(
        timestamp=in_order(now, newest, key),  # never hidden behind an older success (clock stepped back)
        key=key,
        ok=False,
        label=label or (key.display_name if key else ""),
        error=redact(error.message)[:1000],
        http_status=error.status,
        duration_ms=ms,
    )


def record_listed_keys(now: datetime, checked: set[str], account: AccountCredits | None, account_note: str) -> set:
    """List every key with the management key, upsert and log each one; returns the hashes listed.

    Keys in `checked` were already checked and logged directly this run: they only get their name from
    the listing. A failed listing is one failed row (no key) and returns None: nothing is retired then.
    """
    started = time.monotonic()
    include = settings.OPENROUTER_LIST_DISABLED_KEYS
    client = Client.from_settings(settings.OPENROUTER_MANAGEMENT_KEY)
    try:
        # /keys lists the default workspace unless told otherwise: every workspace's keys, one listing each.
        workspaces = [w.id for w in account_room.list_workspaces(client, now)] or [None]
        listed = [
            item
            for workspace in workspaces
            for item in client.list_keys(include_disabled=include, include_expired=include, workspace_id=workspace)
        ]
    except OpenRouterError as exc:
        logger.error("Listing keys with the management key failed: %s", exc.message)
        record_failure(None, exc, now, int((time.monotonic() - started) * 1000), label=LISTING_LABEL)
        return None
    management_hash = key_hash(settings.OPENROUTER_MANAGEMENT_KEY)
    listed = [item for item in listed if item.hash != management_hash]
    with transaction.atomic():
        keys = account_room.upsert_listed(listed, checked, now)
        # Each key's previous reading, in one query, to chain the running spend totals burn rates read.
        readings = CreditLog.objects.filter(ok=True, usage__isnull=False)
        fresh = [item for item in listed if item.hash not in checked]
        previous = {
            key_id: (log.timestamp, log.usage, log.spend_total)
            for key_id, log in readings.latest_by_key(
                ApiKey.objects.filter(pk__in=[keys[item.hash].pk for item in fresh])
            ).items()
        }
        CreditLog.objects.bulk_create(
            [listed_log(keys[item.hash], item, account, account_note, now, previous) for item in fresh]
        )
    return {item.hash for item in listed}


def listed_log(key: ApiKey, item: ListedKey, account, account_note: str, now: datetime, previous: dict) -> CreditLog:
    prev = previous.get(key.pk)
    when = in_order(now, prev, key)
    limit_left = item.limit_remaining
    balance = account.balance if account else None
    known = [v for v in (limit_left, balance) if v is not None]
    return CreditLog(
        timestamp=when,
        key=key,
        ok=True,
        label=item.label or item.name,
        usage=item.usage,
        credit_limit=item.limit,
        remaining=min(known) if known else None,
        raw_response=raw_json(item.raw),
        limit_remaining=limit_left,
        limit_reset=item.limit_reset or "",
        usage_daily=item.usage_daily,
        usage_weekly=item.usage_weekly,
        usage_monthly=item.usage_monthly,
        byok_usage=item.byok_usage,
        is_management_key=False,
        account_credits=account.total_credits if account else None,
        account_usage=account.total_usage if account else None,
        account_balance=balance,
        account_note="" if account else account_note[:200],
        spend_total=chain_total(prev, when, item.usage) if item.usage is not None else None,
    )


def retire_missing(now: datetime, configured: set[str], listed: set[str] | None) -> list[ApiKey]:
    """Keys no longer configured (nor listed by the management key) leave every surface; their open
    alerts resolve with the reason; their history stays (the admin shows it)."""
    present = configured | (listed or set())
    candidates = ApiKey.objects.filter(retired_at__isnull=True).exclude(hash__in=present)
    if listed is None and settings.OPENROUTER_MANAGEMENT_KEY:  # the listing failed: listed keys stay as they were
        candidates = candidates.exclude(source=ApiKey.SOURCE_LISTED)
    retired = list(candidates)
    for key in retired:
        was = "listed by the management key" if key.source == ApiKey.SOURCE_LISTED else "configured"
        key.retired_at, key.is_primary = now, False
        key.retired_reason = f"no longer {was}"
        key.save(update_fields=["retired_at", "is_primary", "retired_reason"])
        alerts.resolve_for_key(key, f"{key.display_name} is no longer watched ({key.retired_reason})", now)
        logger.info("Key %s retired: %s", key.display_name, key.retired_reason)
    return retired


def record_checks(now: datetime) -> None:
    """Check every watched key now and log each result, failures too; retire keys no longer watched.

    The keys are independent: their calls run RUN_CONCURRENCY at a time, all within the run's deadline (a
    key still unanswered then is a failed row). The threads only talk HTTP; this thread writes every row.
    """
    keys = watched_keys()
    if not keys and not settings.OPENROUTER_MANAGEMENT_KEY:
        error = OpenRouterError("OPENROUTER_API_KEY not set: add it to .env (see .env.example) or the environment")
        record_failure(None, error, now)
        return
    primary = next((w.hash for w in keys if w.is_primary), None)
    ApiKey.objects.filter(is_primary=True).exclude(hash=primary).update(is_primary=False)  # exactly one primary
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(settings.RUN_CONCURRENCY, len(keys) + 1)), thread_name_prefix="check"
    )
    try:
        account_call = submit_in_context(pool, fetch_account)
        calls = [(watched, submit_in_context(pool, _timed_check, watched.token)) for watched in keys]
        _wait_within_deadline([account_call, *(call for _, call in calls)])
        account, account_note = account_call.result() if account_call.done() else (None, "not answered in time")
        for watched, call in calls:
            snapshot_or_error, ms = call.result() if call.done() else _unanswered()
            if isinstance(snapshot_or_error, OpenRouterError):
                key = _upsert_key(watched, now)
                logger.error("OpenRouter check failed for %s: %s", key.display_name, snapshot_or_error.message)
                record_failure(key, snapshot_or_error, now, ms)
                continue
            record_snapshot(
                _upsert_key(watched, now, snapshot_or_error), snapshot_or_error, account, account_note, now, ms
            )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a call still hanging ends at the deadline by itself
    configured = {w.hash for w in keys}
    listed = record_listed_keys(now, configured, account, account_note) if settings.OPENROUTER_MANAGEMENT_KEY else None
    retire_missing(now, configured, listed)


def _timed_check(token: str) -> tuple[KeySnapshot | OpenRouterError, int]:
    started = time.monotonic()
    try:
        result = check_credits(token)
    except OpenRouterError as exc:
        result = exc
    return result, int((time.monotonic() - started) * 1000)


def _wait_within_deadline(futures: list[Future]) -> None:
    run = RUN_DEADLINE.get()
    # The client ends each call by the deadline itself; the extra seconds only let a cut call report why.
    wait(futures, timeout=None if run is None else max(run[0] - time.monotonic(), 0) + 5)


def _unanswered() -> tuple[OpenRouterError, int | None]:
    run = RUN_DEADLINE.get()
    return past_deadline_error(run[1] if run else 0), None


def record_run_failure(reason: str, now: datetime | None = None) -> CreditLog:
    """The run itself failed (stopped by the task timeout, killed, its worker gone): one row with the reason."""
    logger.error("Monitoring run failed: %s", reason)
    return record_failure(None, OpenRouterError(reason), now or timezone.now(), label=RUN_LABEL)


def check_all(threshold: float | None = None, now: datetime | None = None) -> status.Status:
    """Check every watched key now, log each result (failures too), and return the status of them all."""
    now = now or timezone.now()
    with run_deadline(settings.RUN_DEADLINE_SECONDS):
        record_checks(now)
    found = status.build(now, threshold=threshold)
    if threshold is None:  # a one-off threshold (the CLI's --threshold) is not what the pages rank by
        status.store_figures(found)
    for key_status in found.keys:
        log_level = logging.INFO if key_status.level == Level.OK else logging.WARNING
        logger.log(log_level, "%s: %s", key_status.name, key_status.message)
    return found


def overall_level(found: status.Status) -> int:
    """The worst level: CRITICAL > UNKNOWN > WARNING > OK, as a plugin exit code."""
    return found.level


def monitor_credits(threshold: float | None = None, now: datetime | None = None) -> dict:
    """Check, log and forecast; the primary key's figures as the seed returns them."""
    return seed_summary(check_all(threshold, now))


def seed_summary(found: status.Status) -> dict:
    """The seed's return value (remaining, alert, burn rate, days left, key info), plus every key."""
    main = found.primary
    return {
        "remaining": main.remaining if main else None,
        "alert": main.alert if main else None,
        "burn_rate": main.burn_rate if main else None,
        "days_left": main.days_left if main else None,
        "key_info": main.as_dict() if main else None,
        "keys": [s.as_dict() for s in found.keys],
        "account": found.account.as_dict(),
        "status": found.level_name,
    }


def run_monitor(now: datetime | None = None) -> status.Status:
    """The scheduled job: check and log every key, sync activity, evaluate alerts, notify.

    OpenRouter and notification failures are logged and recorded, never raised: a failed check is a
    row (and, repeated, an alert), a failed delivery is a row retried next run.
    """
    now = now or timezone.now()
    with run_deadline(settings.RUN_DEADLINE_SECONDS):
        record_checks(now)
        if settings.OPENROUTER_MANAGEMENT_KEY:
            sync_activity_logged(now)
            refresh_catalogue_logged(now)
    DailyFigure.objects.refresh()  # the daily rows the exhaustion range reads (a few rows per run)
    found = status.build(now)  # after the sync, so even the first run forecasts from the activity
    status.store_figures(found)  # what the pages rank many keys by
    evaluation_error = None
    try:
        alerts.evaluate(found, now)
    except Exception as exc:  # still deliver what is pending, then let the task show the failure
        logger.exception("Alert evaluation failed")
        evaluation_error = exc
    try:
        notify.deliver_pending(now)
    except Exception:
        logger.exception("Notification delivery failed")
    agent_webhook.deliver_pending(now)  # never raises: a dead receiver is a failed row, retried next run
    if evaluation_error is not None:
        raise evaluation_error
    return found


def sync_activity_logged(now: datetime) -> None:
    """The per-model activity; its failure is logged, never raised (the checks are recorded already)."""
    try:
        account_room.sync_activity(now)
    except OpenRouterError as exc:
        logger.error("Activity sync failed: %s", exc.message)
    except Exception:
        logger.exception("Activity sync failed")
    try:  # spend per workspace, a request of its own: an account without workspaces answers an error
        account_room.sync_workspace_spend(now)
    except OpenRouterError as exc:
        logger.warning("Spend by workspace not synced: %s", exc.message)


def refresh_catalogue_logged(now: datetime) -> None:
    """The model catalogue, at most daily; a failed fetch is a row with its reason, never a failed check. Then
    the weekly optimize_models task, when a swap would save enough."""
    try:
        catalogue.refresh_if_stale(now)
    except Exception:
        logger.exception("Model catalogue refresh failed")
    try:
        agent_tasks.open_optimization_task(now)
    except Exception:
        logger.exception("Model optimisation task failed")


def display_credits(threshold: float | None = None, verbose: bool = False, stdout=None, show_all: bool = False) -> dict:
    """Check, log, and print the seed's report; returns what monitor_credits returns."""
    found = check_all(threshold)
    (stdout or sys.stdout).write(format_report(found, verbose, show_all))
    return seed_summary(found)
