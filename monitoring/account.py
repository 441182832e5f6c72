"""The management key's rooms: every key (GET /keys) upserted, and spend by model (GET /activity) stored.

Keys are known by their hash only; the management key itself is never stored, logged or shown.
Activity rows are kept forever, so the history outlives OpenRouter's 30-day window.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Max, OuterRef, Subquery

from .bulk import update_rows
from .models import Activity, ApiKey, CreditLog, WorkspaceSpend
from .models import Workspace as WorkspaceRow
from .openrouter import Client, ListedKey, OpenRouterError, Workspace, key_hash, submit_in_context
from .status import ACCOUNT_HASH

logger = logging.getLogger("monitoring")

API_DAYS = 30  # /activity serves the last 30 completed UTC days
FINAL_AFTER_DAYS = 3  # OpenRouter may still revise a day's rows for this long; older days are final
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
SYNC_BATCH = 200  # keys whose activity requests are in flight or held at once


def _management_client() -> Client:
    return Client.from_settings(settings.OPENROUTER_MANAGEMENT_KEY)


def _utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()


# --- every key: GET /keys ---------------------------------------------------------------------


def upsert_listed(listed: list[ListedKey], checked: set[str], now: datetime) -> dict[str, ApiKey]:
    """Create or update one ApiKey per listed key (two queries plus one bulk write each way)."""
    existing = {key.hash: key for key in ApiKey.objects.filter(hash__in=[item.hash for item in listed])}
    new, changed = [], []
    for item in listed:
        key = existing.get(item.hash)
        if item.hash in checked:
            # Configured keys keep their own figures (from /key); the listing only names them, and says when
            # each was last used (what the activity sync skips by).
            if key is not None:
                if not key.name and item.name:
                    key.name = item.name
                    key.created_at = key.created_at or item.created_at
                key.last_used_at, key.last_use_listed = item.last_used_at, item.reports_last_use
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
        key.workspace_id = item.workspace_id
        key.last_used_at, key.last_use_listed = item.last_used_at, item.reports_last_use
        key.last_seen = now
        key.retired_at, key.retired_reason = None, ""
        existing[item.hash] = key
    ApiKey.objects.bulk_create(new)
    fields = ["source", "name", "label", "disabled", "credit_limit", "limit_reset", "expires_at", "created_at"]
    fields += ["workspace_id", "last_used_at", "last_use_listed"]
    update_rows(changed, fields + ["last_seen", "retired_at", "retired_reason"])
    if new and new[0].pk is None:  # backends that do not return ids from bulk_create
        existing.update({key.hash: key for key in ApiKey.objects.filter(hash__in=[k.hash for k in new])})
    return existing


# --- spend by model: GET /activity ------------------------------------------------------------


def sync_activity(now, backfill: bool = False) -> int:
    """Fetch /activity per known key and account-wide, store it idempotently; return rows written.

    A target with nothing stored (first run, new key) or a gap gets the whole 30 days in one
    request; otherwise only the recent days that are not final yet, one request per day. A key
    whose usage has not moved since the last complete sync is skipped: it has nothing new; so is a
    key the listing says was never used, or last used before the oldest day served.
    The keys' requests go out RUN_CONCURRENCY at a time (ten thousand keys, one by one, would outlast
    the run's deadline at OpenRouter's round trip); this thread writes every row, as they come back.
    The account-wide target goes last, so its newest `fetched_at` marks the last complete sync.
    """
    today = _utc_today(now)
    recent = [today - timedelta(days=n) for n in range(1, FINAL_AFTER_DAYS + 2)]  # incl. the newly final day
    stored = _stored_days(recent[-1])
    last_sync = (
        Activity.objects.filter(api_key_hash=ACCOUNT_HASH).aggregate(last=Max("fetched_at"))["last"]
        if not backfill
        else None
    )
    idle = _idle_since(last_sync) if last_sync is not None else set()
    management_hash = key_hash(settings.OPENROUTER_MANAGEMENT_KEY)
    keys = ApiKey.objects.filter(retired_at__isnull=True).exclude(is_management_key=True).exclude(hash=management_hash)
    oldest = datetime.combine(today - timedelta(days=API_DAYS), time.min, tzinfo=UTC)  # of the days served
    plans = []
    columns = ("pk", "hash", "name", "last_use_listed", "last_used_at")
    for pk, target, name, use_listed, last_used in keys.order_by("id").values_list(*columns):
        if use_listed and (last_used is None or last_used < oldest):
            continue  # never used, or not in the days /activity serves: nothing to fetch (many listed keys are so)
        plan = _plan(stored.get(target), recent, backfill, pk in idle)
        if plan:
            plans.append((target, name, plan))
    written = 0
    clients = threading.local()  # one client (and kept-alive connection) per thread of the pool
    with ThreadPoolExecutor(max_workers=settings.RUN_CONCURRENCY, thread_name_prefix="activity") as pool:
        for first in range(0, len(plans), SYNC_BATCH):  # a batch's answers are held until stored, no more
            for target, fetched in _fetched(pool, clients, plans[first : first + SYNC_BATCH]):
                written += _store(fetched, target, stored, now, today, backfill)
    plan = _plan(stored.get(ACCOUNT_HASH), recent, backfill, False)
    written += _store(_fetch(clients, ACCOUNT_HASH, plan), ACCOUNT_HASH, stored, now, today, backfill)
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


def _idle_since(last_sync: datetime) -> set[int]:
    """The keys whose usage has not moved since a check made before the last complete sync: their newest
    successful reading equals the newest one at or before it (both read through the (key, time) index, in one
    query for every key)."""
    readings = CreditLog.objects.successful().exclude(usage=None).filter(key=OuterRef("pk"))
    newest = readings.order_by("-timestamp", "-id").values("usage")[:1]
    synced = readings.filter(timestamp__lte=last_sync).order_by("-timestamp", "-id").values("usage")[:1]
    rows = ApiKey.objects.annotate(latest=Subquery(newest), before=Subquery(synced)).filter(retired_at__isnull=True)
    return {
        pk
        for pk, latest, before in rows.values_list("pk", "latest", "before")
        if before is not None and latest is not None and abs(latest - before) < 1e-9
    }


def _fetched(pool: ThreadPoolExecutor, clients: threading.local, plans: list[tuple[str, str, list]]):
    """(target, answers) of each plan, as they come back. A key deleted since it was listed (404) is skipped; any
    other failure stops the sync, and what is not running yet never starts."""
    calls = {submit_in_context(pool, _fetch, clients, target, plan): (target, name) for target, name, plan in plans}
    try:
        for call in as_completed(calls):
            target, name = calls[call]
            try:
                yield target, call.result()
            except OpenRouterError as exc:
                if exc.status != 404:
                    raise
                logger.info("Activity of %s not found (deleted key?): %s", name or target[:12], exc.message)
    finally:
        for call in calls:
            call.cancel()


def _fetch(clients: threading.local, target: str, plan: list[date | None]) -> list[tuple[date | None, list[dict]]]:
    """The plan's requests for one target (in a thread of the pool: HTTP only, no database)."""
    client = getattr(clients, "client", None)
    if client is None:
        client = clients.client = _management_client()
    return [(day, client.get_activity(day.isoformat() if day else None, target or None)) for day in plan]


def _store(fetched, target: str, stored: dict, now: datetime, today: date, backfill: bool) -> int:
    written = 0
    for day, rows in fetched:
        whole = day is None and not backfill and target in stored  # nothing of a new target is final yet
        written += store_activity(rows, target, now, today, skip_final=whole)
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


# --- workspaces: GET /workspaces, their keys, spend per workspace -----------------------------


def list_workspaces(client: Client, now: datetime) -> list[Workspace]:
    """Every workspace of the account, stored by id and name; [] when the API has none to give (an older
    API or a plan without workspaces: the default workspace's keys are listed then, as before)."""
    try:
        found = client.list_workspaces()
    except OpenRouterError as exc:
        logger.info("Workspaces not listed (%s): listing the default workspace's keys", exc.message)
        return []
    for workspace in found:
        row, _ = WorkspaceRow.objects.update_or_create(
            workspace_id=workspace.id, defaults={"name": workspace.name, "last_seen": now}
        )
        try:  # the workspace's own budgets, shown beside its keys (each key's budgets[] says what binds it)
            row.budgets = client.workspace_budgets(workspace.id)
            row.save(update_fields=["budgets"])
        except OpenRouterError as exc:
            logger.info("Budgets of workspace %s not read: %s", workspace.name, exc.message)
    return found


def sync_workspace_spend(now: datetime) -> int:
    """Store spend per workspace per completed UTC day (GET /activity?group_by=workspace); returns rows."""
    rows = _management_client().workspace_spend()
    for day, workspace_id, usage, requests in rows:
        WorkspaceSpend.objects.update_or_create(
            date=date.fromisoformat(day),
            workspace_id=workspace_id,
            defaults={"usage": usage, "requests": requests, "fetched_at": now},
        )
    return len(rows)
