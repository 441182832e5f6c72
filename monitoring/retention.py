"""Retention: thin raw credit-log rows older than RETENTION_DAYS without changing any figure shown.

For each key, old successful readings are kept where they carry information: the first and the
last of each UTC day and of each day in the reporting zone, both sides of a usage drop (a
counter reset) and of a change in the account's purchased credits (a top-up). Between two kept
readings cumulative usage only rises, so spend between them is still last minus first: every
daily spend figure stays exactly as it was, and burn rates over the windows shown (1, 7, 30
days) read only rows newer than the cut-off, which is never less than 31 days back.
Failed checks older than the cut-off are thinned to the first of each key's UTC day, and audit-trail entries
older than it are deleted (the trail is otherwise append-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, AuditEntry, CreditLog, DailyFigure, HourlyFigure

MIN_RETENTION_DAYS = 31  # the longest burn-rate window shown is 30 days
BATCH = 1000
SLICE = timedelta(days=7)


@dataclass
class PruneResult:
    cutoff: datetime
    examined: int = 0
    deleted: int = 0
    audit_deleted: int = 0  # audit-trail entries older than the cut-off (kept as long as the raw log)

    @property
    def kept(self) -> int:
        return self.examined - self.deleted


@dataclass
class _Row:
    id: int
    timestamp: datetime
    usage: float
    credits: float | None
    utc_day: date
    local_day: date
    keep: bool = False


def cutoff_for(days: int, now: datetime) -> datetime:
    """Start of the UTC day `days` ago: whole days are thinned, never part of one."""
    if days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"RETENTION_DAYS must be at least {MIN_RETENTION_DAYS} (0 keeps every row): "
            "the 30-day burn rate reads raw rows"
        )
    day = (now - timedelta(days=days)).astimezone(UTC).date()
    return datetime.combine(day, time.min, tzinfo=UTC)


def _in_slices(rows, cutoff: datetime) -> Iterator[tuple]:
    """Rows older than the cut-off, read a week at a time: each slice is fully read before any
    of its rows is deleted (deleting under an open cursor is not portable), and memory stays small."""
    first = rows.filter(timestamp__lt=cutoff).values_list("timestamp", flat=True).first()
    while first is not None and first < cutoff:
        until = min(first + SLICE, cutoff)
        yield from list(rows.filter(timestamp__gte=first, timestamp__lt=until))
        first = until


def _doomed_successes(key: ApiKey | None, cutoff: datetime, zone: ZoneInfo, counter: PruneResult) -> Iterator[int]:
    """Ids of old successful readings that carry no information the kept ones do not."""
    rows = (
        CreditLog.objects.successful()
        .for_key(key)
        .filter(usage__isnull=False)
        .order_by("timestamp", "usage", "id")  # the order forecast.clean_samples reads them in
        .values_list("id", "timestamp", "usage", "account_credits")
    )
    prev: _Row | None = None
    for row_id, when, usage, credits in _in_slices(rows, cutoff):
        counter.examined += 1
        row = _Row(row_id, when, usage, credits, when.astimezone(UTC).date(), when.astimezone(zone).date())
        if prev is None:
            row.keep = True
        else:
            new_day = row.utc_day != prev.utc_day or row.local_day != prev.local_day
            reset = row.usage < prev.usage
            topup = row.credits != prev.credits
            if new_day or reset or topup:
                row.keep = prev.keep = True
            if not prev.keep:
                yield prev.id
        prev = row
    # The newest old reading is the last of its day: kept.


def _doomed_others(key: ApiKey | None, cutoff: datetime, counter: PruneResult) -> Iterator[int]:
    """Old failed checks (and readings without usage): the first of each UTC day stays."""
    rows = (
        CreditLog.objects.for_key(key)
        .exclude(ok=True, usage__isnull=False)
        .order_by("timestamp", "id")
        .values_list("id", "timestamp")
    )
    seen: date | None = None
    for row_id, when in _in_slices(rows, cutoff):
        counter.examined += 1
        day = when.astimezone(UTC).date()
        if day == seen:
            yield row_id
        seen = day


def _delete(ids: list[int]) -> int:
    with transaction.atomic():
        deleted, _ = CreditLog.objects.filter(id__in=ids).delete()
    return deleted


def prune_credit_log(days: int | None = None, now: datetime | None = None, dry_run: bool = False) -> PruneResult:
    """Thin rows older than `days` (default RETENTION_DAYS). Memory stays bounded by a week of one key's rows."""
    days = settings.RETENTION_DAYS if days is None else days
    now = now or timezone.now()
    result = PruneResult(cutoff_for(days, now))
    zone = ZoneInfo(settings.CREDITMON_TIME_ZONE)
    keys: list[ApiKey | None] = [*ApiKey.objects.all(), None]
    for key in keys:
        for doomed in (_doomed_successes(key, result.cutoff, zone, result), _doomed_others(key, result.cutoff, result)):
            batch: list[int] = []
            for row_id in doomed:
                batch.append(row_id)
                if len(batch) == BATCH:
                    result.deleted += len(batch) if dry_run else _delete(batch)
                    batch = []
            if batch:
                result.deleted += len(batch) if dry_run else _delete(batch)
    old_audit = AuditEntry.objects.filter(created__lt=result.cutoff)
    result.audit_deleted = old_audit.count() if dry_run else old_audit.delete()[0]
    if result.deleted and not dry_run:
        DailyFigure.objects.rebuild()  # a deleted row may have been a day's newest: fold the days again
        HourlyFigure.objects.rebuild()  # and the hours' check counts change
    return result
