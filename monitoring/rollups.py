"""The rollups: one row per key per day and per key per UTC hour, folded from the credit log as it grows,
so pages and the API read a few hundred rows where the log holds a million. A day's or an hour's figures
are the log's own (its last reading, its extremes); `rebuildrollups` recomputes them after a bulk load.

Below the models module: the credit log is looked up through the app registry, never imported.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count, Max, Min, Q
from django.db.models.functions import Greatest, Substr, Trunc, TruncDate
from django.utils import timezone

from .bulk import update_rows

FOLD_IN_PYTHON = 5000  # DailyFigure.refresh groups up to this many new checks itself, more in the database


def credit_log():
    return apps.get_model("monitoring", "CreditLog")


def aware(value) -> datetime | None:
    """A timestamp from a raw aggregate: SQLite returns its stored UTC text, PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class DailyFigureQuerySet(models.QuerySet):
    def buckets(self, kind: str, tz, since: date | None = None, account: bool = False) -> list[dict]:
        """CreditLogQuerySet.buckets' figures ("day" or "week" in `tz`) from the daily rows, oldest first:
        `bucket`, `last_id`, `low`, `high` (usage). `account`: across keys, the last row with account figures."""
        rows = self.order_by("day")
        if since is not None:
            rows = rows.filter(day__gte=since)
        if account:
            rows = rows.filter(last_account_id__isnull=False).values("day").annotate(last=Max("last_account_id"))
            days = [(row["day"], row["last"], None, None) for row in rows]
        else:
            days = list(rows.values_list("day", "last_id", "usage_low", "usage_high"))
        found: dict[date, dict] = {}
        for day, last_id, low, high in days:
            start = day - timedelta(days=day.weekday()) if kind == "week" else day
            bucket = found.setdefault(start, {"bucket": datetime.combine(start, time.min, tzinfo=tz), "last_id": None,
                                              "low": None, "high": None})  # fmt: skip
            bucket["last_id"] = max(filter(None, (bucket["last_id"], last_id)), default=None)
            bucket["low"] = min((v for v in (bucket["low"], low) if v is not None), default=None)
            bucket["high"] = max((v for v in (bucket["high"], high) if v is not None), default=None)
        return [found[start] for start in sorted(found)]

    def refresh(self) -> int:
        """Fold the successful checks written since the last fold into the daily rows; returns key-days folded.

        Two queries when nothing is new. Rows are folded by id, as the monitor writes them; a bulk load
        or a restore that reuses older ids needs `rebuildrollups`. A change of CREDITMON_TIME_ZONE
        rebuilds, since the days themselves move.
        """
        state = RollupState.objects.filter(name="daily").first()
        if state is None or state.zone != settings.CREDITMON_TIME_ZONE:
            return self.rebuild()
        fresh = credit_log().objects.successful().filter(id__gt=state.last_id).order_by("id")  # a primary-key range
        few = list(fresh.values_list("id", "key_id", "timestamp", "usage", "account_balance")[: FOLD_IN_PYTHON + 1])
        if len(few) > FOLD_IN_PYTHON:
            return self._fold(fresh, state)  # a bulk load: the database groups it

        tz, grouped = ZoneInfo(state.zone), {}
        for row_id, key_id, when, usage, balance in few:  # the usual case: the checks since the last view
            if key_id is None:
                continue
            day = when.astimezone(tz).date()
            row = grouped.setdefault((key_id, day), {"key_id": key_id, "day": day, "last_id": row_id, "low": None,
                                                     "high": None, "last_account_id": None})  # fmt: skip
            row["last_id"] = max(row["last_id"], row_id)
            if usage is not None:
                row["low"] = usage if row["low"] is None else min(row["low"], usage)
                row["high"] = usage if row["high"] is None else max(row["high"], usage)
            if balance is not None:
                row["last_account_id"] = max(row["last_account_id"] or 0, row_id)
        return self._merge(list(grouped.values()), state)

    def rebuild(self) -> int:
        """Recompute every daily row from the credit log (bulk loads, retention, a new reporting zone)."""
        with transaction.atomic():
            self.model.objects.all().delete()
            state, _ = RollupState.objects.update_or_create(
                name="daily", defaults={"zone": settings.CREDITMON_TIME_ZONE, "last_id": 0}
            )
            return self._fold(credit_log().objects.successful(), state)

    def _fold(self, logs: models.QuerySet, state: RollupState) -> int:

        tz = ZoneInfo(state.zone)
        rows = [
            row
            for row in logs.order_by()
            .annotate(day=TruncDate("timestamp", tzinfo=tz))
            .values("key_id", "day")
            .annotate(
                last_id=Max("id"),
                low=Min("usage"),
                high=Max("usage"),
                last_account_id=Max("id", filter=Q(account_balance__isnull=False)),
            )
            if row["key_id"] is not None  # a check that failed before any key existed has no figures
        ]
        return self._merge(rows, state)

    def _merge(self, rows: list[dict], state: RollupState) -> int:
        if not rows:
            return 0
        existing = {
            (f.key_id, f.day): f
            for f in self.model.objects.filter(
                key_id__in={r["key_id"] for r in rows}, day__gte=min(r["day"] for r in rows)
            )
        }
        new, changed = [], []
        for row in rows:
            figure = existing.get((row["key_id"], row["day"]))
            if figure is None:
                new.append(self.model(key_id=row["key_id"], day=row["day"], last_id=row["last_id"],
                                      usage_low=row["low"], usage_high=row["high"],
                                      last_account_id=row["last_account_id"]))  # fmt: skip
                continue
            merged = (
                max(figure.last_id, row["last_id"]),
                min((v for v in (figure.usage_low, row["low"]) if v is not None), default=None),
                max((v for v in (figure.usage_high, row["high"]) if v is not None), default=None),
                max((v for v in (figure.last_account_id, row["last_account_id"]) if v is not None), default=None),
            )
            if merged != (figure.last_id, figure.usage_low, figure.usage_high, figure.last_account_id):
                figure.last_id, figure.usage_low, figure.usage_high, figure.last_account_id = merged
                changed.append(figure)
        with transaction.atomic():
            self.model.objects.bulk_create(new, batch_size=2000)
            update_rows(changed, ["last_id", "usage_low", "usage_high", "last_account_id"])
            top = max(row["last_id"] for row in rows)
            folded = RollupState.objects.filter(pk=state.pk)
            folded.update(last_id=Greatest("last_id", top), refreshed_at=timezone.now())
        return len(rows)


class DailyFigure(models.Model):
    """One key's successful checks of one day in CREDITMON_TIME_ZONE, folded: the Financial page's source.

    A year of five-minute checks is a million log rows but 365 of these per key. Kept current by
    DailyFigure.objects.refresh() (cheap: only rows written since) and rebuilt by `rebuildrollups`.
    """

    key = models.ForeignKey("monitoring.ApiKey", on_delete=models.CASCADE, related_name="daily_figures")
    day = models.DateField()
    last_id = models.BigIntegerField(help_text="The day's newest successful check (rows are written in time order)")
    usage_low = models.FloatField(null=True, blank=True)
    usage_high = models.FloatField(null=True, blank=True)
    last_account_id = models.BigIntegerField(null=True, blank=True, help_text="Newest check with account figures")

    objects = DailyFigureQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="dailyfigure_key_day")]
        indexes = [models.Index(fields=["day"], name="dailyfigure_day")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.day}: {self.usage_low}..{self.usage_high}"


class HourlyFigureQuerySet(models.QuerySet):
    def refresh(self) -> int:
        """Fold the checks written since the last fold into the hourly rows (counts add up: each check is
        folded once, by id, as the single monitor writes them). Two queries when nothing is new."""
        state = RollupState.objects.filter(name="hourly").first()
        if state is None:
            return self.rebuild()
        fresh = credit_log().objects.filter(id__gt=state.last_id).order_by("id")  # a primary-key range
        few = list(fresh.values_list(*HOURLY_FIELDS)[: FOLD_IN_PYTHON + 1])
        if len(few) > FOLD_IN_PYTHON:
            return self._fold(hourly_aggregates(fresh), state)
        return self._fold(hourly_in_python(few), state)

    def rebuild(self) -> int:
        """Recompute every hourly row and the UTC days folded from them from the log (bulk loads, retention)."""
        with transaction.atomic():
            self.model.objects.all().delete()
            UtcDailyFigure.objects.all().delete()
            state, _ = RollupState.objects.update_or_create(name="hourly", defaults={"zone": "UTC", "last_id": 0})
            return self._fold(hourly_aggregates(credit_log().objects.all()), state)

    def _fold(self, rows: list[dict], state: RollupState) -> int:
        """Merge new checks' hourly aggregates into the hours, and the same aggregates into their UTC days:
        a day is the merge of its hours, so adding a delta to both keeps them equal."""
        rows = [row for row in rows if row["key_id"] is not None]
        if not rows:
            return 0
        days: dict[tuple, dict] = {}
        for row in rows:
            day_row = {**row, "day": row["hour"].date()}
            known = days.get((row["key_id"], day_row["day"]))
            if known is None:
                days[(row["key_id"], day_row["day"])] = day_row
            else:
                merge_hour(known, day_row)
        with transaction.atomic():
            merge_figures(self.model, "hour", rows)
            merge_figures(UtcDailyFigure, "day", list(days.values()))
            top = max(row["top"] for row in rows)
            folded = RollupState.objects.filter(pk=state.pk)
            folded.update(last_id=Greatest("last_id", top), refreshed_at=timezone.now())
        return len(rows)


def merge_figures(model, bucket: str, rows: list[dict]) -> None:
    """Add aggregates (HourlyFigure fields, one per key and `bucket`) into `model`'s stored rows."""
    existing = {
        (f.key_id, getattr(f, bucket)): f
        for f in model.objects.filter(
            key_id__in={r["key_id"] for r in rows}, **{f"{bucket}__gte": min(r[bucket] for r in rows)}
        )
    }
    new, changed = [], []
    for row in rows:
        figure = existing.get((row["key_id"], row[bucket]))
        if figure is None:
            new.append(model(key_id=row["key_id"], **{bucket: row[bucket]}, **{f: row[f] for f in HOURLY_MERGED}))
            continue
        merge_hour(figure, row)
        changed.append(figure)
    model.objects.bulk_create(new, batch_size=2000)
    update_rows(changed, HOURLY_MERGED)


HOURLY_FIELDS = ("id", "key_id", "timestamp", "ok", "usage", "remaining", "credit_limit", "account_balance")
HOURLY_MERGED = ["checks", "failures", "usage_max", "remaining_min", "limit_max", "balance_min", "last_at"]


def _pick(function, *values):
    known = [v for v in values if v is not None]
    return function(known) if known else None


def merge_hour(figure, row: dict) -> None:
    """Add `row`'s aggregates (same key and hour) into `figure` (an HourlyFigure or a dict like `row`)."""
    get = figure.get if isinstance(figure, dict) else lambda name: getattr(figure, name)
    put = figure.__setitem__ if isinstance(figure, dict) else lambda name, value: setattr(figure, name, value)
    put("checks", get("checks") + row["checks"])
    put("failures", get("failures") + row["failures"])
    for name, function in (("usage_max", max), ("remaining_min", min), ("limit_max", max), ("balance_min", min)):
        put(name, _pick(function, get(name), row[name]))
    put("last_at", max(get("last_at"), row["last_at"]))


def hour_bucket(column: str = "timestamp"):
    """The UTC hour of a timestamp, computed by the database (SQLite: a prefix of its stored UTC text)."""
    if connection.vendor == "sqlite":
        return Substr(column, 1, 13)
    return Trunc(column, "hour", tzinfo=UTC)


def bucket_time(value) -> datetime:
    """hour_bucket()'s value as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = value + (":00:00" if len(value) == 13 else " 00:00:00")
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def hourly_aggregates(logs: models.QuerySet) -> list[dict]:
    """Checks grouped per key per UTC hour by the database, as HourlyFigure fields (plus `top`: newest id)."""
    rows = (
        logs.order_by()
        .annotate(bucket=hour_bucket())
        .values("key_id", "bucket")
        .annotate(
            checks=Count("id"),
            failures=Count("id", filter=Q(ok=False)),
            usage_max=Max("usage"),
            remaining_min=Min("remaining"),
            limit_max=Max("credit_limit"),
            balance_min=Min("account_balance"),
            last_at=Max("timestamp"),
            top=Max("id"),
        )
    )
    return [{**{k: v for k, v in row.items() if k != "bucket"}, "hour": bucket_time(row["bucket"])} for row in rows]


def hourly_in_python(rows: list[tuple]) -> list[dict]:
    """hourly_aggregates for a few rows already read (HOURLY_FIELDS tuples)."""
    grouped: dict[tuple, dict] = {}
    for row_id, key_id, when, ok, usage, remaining, limit, balance in rows:
        hour = when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        one = {"key_id": key_id, "hour": hour, "checks": 1, "failures": 0 if ok else 1, "usage_max": usage,
               "remaining_min": remaining, "limit_max": limit, "balance_min": balance, "last_at": when,
               "top": row_id}  # fmt: skip
        if (key_id, hour) in grouped:
            merge_hour(grouped[(key_id, hour)], one)
            grouped[(key_id, hour)]["top"] = max(grouped[(key_id, hour)]["top"], row_id)
        else:
            grouped[(key_id, hour)] = one
    return list(grouped.values())


class FoldedChecks(models.Model):
    """The figures of a bucket of one key's checks (HOURLY_MERGED): an hour's, or a UTC day's folded from its hours."""

    checks = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    usage_max = models.FloatField(null=True, blank=True)
    remaining_min = models.FloatField(null=True, blank=True)
    limit_max = models.FloatField(null=True, blank=True)
    balance_min = models.FloatField(null=True, blank=True)
    last_at = models.DateTimeField()

    class Meta:
        abstract = True


class HourlyFigure(FoldedChecks):
    """One key's checks of one UTC hour, folded: /api/history's hourly and daily points read these."""

    key = models.ForeignKey("monitoring.ApiKey", on_delete=models.CASCADE, related_name="hourly_figures")
    hour = models.DateTimeField(help_text="Start of the UTC hour")

    objects = HourlyFigureQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "hour"], name="hourlyfigure_key_hour")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.hour:%Y-%m-%d %H}h: {self.checks} checks"


class UtcDailyFigure(FoldedChecks):
    """One key's checks of one UTC day, folded from its hours as they fold: /api/history's daily points read
    one row per key per day, so a year costs the same at one check an hour or one every five minutes."""

    key = models.ForeignKey("monitoring.ApiKey", on_delete=models.CASCADE, related_name="utc_daily_figures")
    day = models.DateField(help_text="The UTC day")

    class Meta:
        verbose_name = "UTC daily figure"
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="utcdailyfigure_key_day")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.day}: {self.checks} checks"


class RollupState(models.Model):
    """How far DailyFigure has folded the credit log, and in which zone its days are."""

    name = models.CharField(max_length=20, unique=True)
    zone = models.CharField(max_length=64)
    last_id = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name}: up to #{self.last_id} in {self.zone}"
