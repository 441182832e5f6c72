"""What the monitor saw and did: keys, the credit log, activity, alerts, their events and deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Case, Count, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Greatest, Substr, Trunc, TruncDate, TruncDay, TruncHour, TruncWeek
from django.utils import timezone

from . import forecast

FOLD_IN_PYTHON = 5000  # DailyFigure.refresh groups up to this many new checks itself, more in the database
# Chart buckets: each page aggregates in the database to one row per bucket, never one per check.
TRUNCATE = {"hour": TruncHour, "day": TruncDay, "week": TruncWeek}


class Level(models.IntegerChoices):
    """Alert levels in the monitoring-plugin order; the value is also the CLI exit code."""

    OK = 0, "OK"
    WARNING = 1, "WARNING"
    CRITICAL = 2, "CRITICAL"
    UNKNOWN = 3, "UNKNOWN"


# Severity for escalation and every listing: CRITICAL, UNKNOWN (monitor blind), WARNING, OK.
SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.CRITICAL: 3}
# The same order for the database, so lists sort worst first without reading every row.
SEVERITY_ORDER = Case(*(When(level=level, then=Value(rank)) for level, rank in SEVERITY.items()), default=Value(0))


def worst_level(levels, default: int = Level.OK) -> int:
    """The most severe of `levels` (CRITICAL > UNKNOWN > WARNING > OK)."""
    return max(levels, key=lambda level: SEVERITY[Level(level)], default=default)


def severity(level: int) -> int:
    return SEVERITY[Level(level)]


class ApiKeyQuerySet(models.QuerySet):
    def watched(self) -> ApiKeyQuerySet:
        """Keys on the surfaces: not retired (still configured, or listed by the management key)."""
        return self.filter(retired_at__isnull=True)


class ApiKey(models.Model):
    """One OpenRouter key being watched, identified by its hash (never the key itself)."""

    SOURCE_CONFIGURED = "configured"  # given directly in the environment
    SOURCE_LISTED = "listed"  # found through the management key's GET /keys
    SOURCE_CHOICES = [(SOURCE_CONFIGURED, "configured"), (SOURCE_LISTED, "listed by /keys")]

    hash = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    label = models.CharField(max_length=200, blank=True, help_text="Masked key as OpenRouter shows it")
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES, default=SOURCE_CONFIGURED)
    is_primary = models.BooleanField(default=False, help_text="The OPENROUTER_API_KEY key")
    is_management_key = models.BooleanField(default=False)
    disabled = models.BooleanField(default=False)
    credit_limit = models.FloatField(null=True, blank=True)
    limit_reset = models.CharField(max_length=20, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(
        null=True, blank=True, help_text="No longer configured nor listed: off the surfaces, history kept"
    )
    retired_reason = models.CharField(max_length=200, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-is_primary", "name", "id"]
        verbose_name = "API key"
        constraints = [  # OPENROUTER_API_KEY's key, and only it
            models.UniqueConstraint(fields=["is_primary"], condition=Q(is_primary=True), name="apikey_one_primary")
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.label or self.hash[:12]


@dataclass(frozen=True)
class SpendWindow:
    """What the database summed over one window: spend, first and last reading time, reading count."""

    spent: float  # between consecutive readings both inside the window
    spent_after: float  # also the step from the reading before the window into it
    first: datetime | None
    last: datetime | None
    count: int

    @property
    def rate(self) -> float | None:
        """Spend per day over the time the readings span (forecast.burn_rate_per_day's rule)."""
        if self.count < 2 or self.first is None or self.last is None:
            return None
        span = (self.last - self.first).total_seconds() / 86400.0
        return self.spent / span if span > 0 else None


def aware(value) -> datetime | None:
    """A timestamp from a raw aggregate: SQLite returns its stored UTC text, PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


# The reset rule in SQL, as forecast.spend_between writes it in Python: a drop in usage is a new counter.
SPEND_STEP_SQL = "CASE WHEN {u} >= {prev} THEN {u} - {prev} ELSE {u} END"


def chain_total(prev: tuple | None, when: datetime, usage: float) -> float | None:
    """Running spend total after `prev` (timestamp, usage, spend_total) for a reading at `when`."""
    if prev is None:
        return 0.0  # the key's first reading
    prev_when, prev_usage, prev_total = prev
    if prev_total is None or prev_when > when or (prev_when == when and usage < prev_usage):
        return None  # out of (time, usage) order, or after an unknown total: readers sum the rows instead
    return prev_total + forecast.spend_between(prev_usage, usage)


def window_annotations(now: datetime, windows: dict[str, float]) -> dict:
    """Per ApiKey row: time and running total of its last reading up to `now` and of the first reading of
    each window, each an index look-up on (key, timestamp, usage) among successful readings."""
    readings = CreditLog.objects.filter(key=OuterRef("pk"), ok=True, usage__isnull=False, timestamp__lte=now)
    last = readings.order_by("-timestamp", "-usage", "-id")
    found = {"t_last": Subquery(last.values("timestamp")[:1]), "s_last": Subquery(last.values("spend_total")[:1])}
    for label, days in windows.items():
        first = readings.filter(timestamp__gte=now - timedelta(days=days)).order_by("timestamp", "usage", "id")
        found[f"t_{label}"] = Subquery(first.values("timestamp")[:1])
        found[f"s_{label}"] = Subquery(first.values("spend_total")[:1])
    return found


def rates_from_totals(row, windows: dict[str, float]) -> tuple[dict[str, float | None], bool]:
    """Burn rates from window_annotations' figures, and whether a total was missing (sum the rows then)."""
    rates: dict[str, float | None] = {}
    missing = False
    for label in windows:
        first_time, first_total = getattr(row, f"t_{label}"), getattr(row, f"s_{label}")
        if first_time is None or row.t_last is None or row.t_last <= first_time:
            rates[label] = None  # fewer than two readings, or no time between them
        elif first_total is None or row.s_last is None:
            rates[label], missing = None, True
        else:
            rates[label] = (row.s_last - first_total) / ((row.t_last - first_time).total_seconds() / 86400.0)
    return rates, missing


class CreditLogQuerySet(models.QuerySet):
    def since(self, when: datetime) -> CreditLogQuerySet:
        return self.filter(timestamp__gte=when)

    def successful(self) -> CreditLogQuerySet:
        return self.filter(ok=True)

    def failed(self) -> CreditLogQuerySet:
        return self.filter(ok=False)

    def for_key(self, key: ApiKey | None) -> CreditLogQuerySet:
        return self.filter(key=key) if key is not None else self.filter(key__isnull=True)

    def usage_samples(self, key: ApiKey | None, since: datetime) -> list[tuple[datetime, float]]:
        """(timestamp, cumulative usage) pairs for the forecast functions, oldest first."""
        rows = self.successful().for_key(key).since(since).order_by("timestamp")
        return list(rows.values_list("timestamp", "usage"))

    def spend_windows(
        self, keys: list[ApiKey], now: datetime, starts: dict[str, datetime]
    ) -> dict[int, dict[str, SpendWindow]]:
        """Reset-aware spend of each key over each window [start, now], summed by the database in one query.

        The same rule as forecast.burn_rate_per_day: successful readings with usage, ordered by (time,
        usage); the spend between consecutive readings (a drop read as a reset) counts for a window when
        both readings are inside it. `spent_after` also counts the step into the window from the reading
        before it (month to date). Only the rows of the widest window are read, through the (key, time) index.
        """
        if not keys or not starts:
            return {}
        adapt = connection.ops.adapt_datetimefield_value
        step = SPEND_STEP_SQL.format(u="u", prev="prev_u")
        columns, params = [], []
        for start in starts.values():
            columns += [
                f"SUM(CASE WHEN t >= %s AND prev_t >= %s THEN {step} END)",
                f"SUM(CASE WHEN t >= %s AND prev_t IS NOT NULL THEN {step} END)",
                "MIN(CASE WHEN t >= %s THEN t END)",
                "MAX(CASE WHEN t >= %s THEN t END)",
                "COUNT(CASE WHEN t >= %s THEN 1 END)",
            ]
            params += [adapt(start)] * 6
        ids = [key.pk for key in keys]
        order = 'PARTITION BY key_id ORDER BY "timestamp", "usage", id'  # forecast.clean_samples' order
        sql = (
            f"SELECT key_id, {', '.join(columns)} FROM ("
            f' SELECT key_id, "usage" AS u, "timestamp" AS t, LAG("usage") OVER ({order}) AS prev_u,'
            f' LAG("timestamp") OVER ({order}) AS prev_t FROM {connection.ops.quote_name(self.model._meta.db_table)}'
            f' WHERE key_id IN ({", ".join(["%s"] * len(ids))}) AND ok AND "usage" IS NOT NULL'
            ' AND "timestamp" >= %s AND "timestamp" <= %s'
            ") readings GROUP BY key_id"
        )
        params += [*ids, adapt(min(starts.values())), adapt(now)]
        found: dict[int, dict[str, SpendWindow]] = {}
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for row in cursor.fetchall():
                windows = {}
                for n, label in enumerate(starts):
                    spent, after, first, last, count = row[1 + 5 * n : 6 + 5 * n]
                    windows[label] = SpendWindow(spent or 0.0, after or 0.0, aware(first), aware(last), count)
                found[row[0]] = windows
        return found

    def burn_rates(self, keys: list[ApiKey], now: datetime, windows: dict[str, float]) -> dict[int, dict]:
        """forecast.burn_rate_per_day of each key for each window (label: days): from the running totals
        of the window's first and last readings (one query of index look-ups), summed by the database
        (spend_windows) only for a key whose totals are missing (rows bulk-loaded without them)."""
        if not keys:
            return {}
        found = ApiKey.objects.filter(pk__in=[k.pk for k in keys]).annotate(**window_annotations(now, windows))
        rates, rescan = {}, []
        for row in found:
            rates[row.pk], missing = rates_from_totals(row, windows)
            if missing:
                rescan.append(row)
        if rescan:
            exact = self.spend_windows(rescan, now, {label: now - timedelta(days=d) for label, d in windows.items()})
            for key in rescan:
                rates[key.pk] = {label: exact[key.pk][label].rate if key.pk in exact else None for label in windows}
        return {k.pk: rates.get(k.pk, dict.fromkeys(windows)) for k in keys}

    def recompute_spend_totals(self) -> int:
        """Set every reading's running total from the rows themselves (after a bulk load); returns rows set."""
        table = connection.ops.quote_name(self.model._meta.db_table)
        order = 'PARTITION BY key_id ORDER BY "timestamp", "usage", id'
        sql = (
            f"UPDATE {table} SET spend_total = totals.total FROM ("
            f" SELECT id, SUM(CASE WHEN prev IS NULL THEN 0 ELSE {SPEND_STEP_SQL.format(u='u', prev='prev')} END)"
            f"  OVER ({order} ROWS UNBOUNDED PRECEDING) AS total FROM ("
            f'  SELECT id, key_id, "timestamp", "usage", "usage" AS u, LAG("usage") OVER ({order}) AS prev'
            f'  FROM {table} WHERE ok AND "usage" IS NOT NULL AND key_id IS NOT NULL) readings'
            f") totals WHERE {table}.id = totals.id"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.rowcount

    def next_spend_total(self, key: ApiKey, when: datetime, usage: float | None) -> float | None:
        """The running total for a new reading: the previous reading's plus the spend since it (a drop
        is a reset). None when it cannot be chained (no usage, the previous total unknown, same instant)."""
        if usage is None:
            return None
        prev = (
            self.filter(key=key, ok=True, usage__isnull=False)
            .order_by("-timestamp", "-usage", "-id")
            .values_list("timestamp", "usage", "spend_total")
            .first()
        )
        return chain_total(prev, when, usage)

    def burn_rate(
        self, key: ApiKey | None, now: datetime, window_days: float, newest: CreditLog | None = None
    ) -> float | None:
        """forecast.burn_rate_per_day over the key's logged readings, from the running totals at the window's
        first and last readings. `newest`: the reading just written at `now`, chained, so the last one."""
        if key is None:
            return None
        # Plain index look-ups (cheaper to build than burn_rates' annotated query: this runs on every check).
        readings = self.filter(key=key, ok=True, usage__isnull=False, timestamp__lte=now)
        if newest is not None and newest.spend_total is not None and newest.timestamp == now:
            last = (newest.timestamp, newest.spend_total)
        else:
            last = readings.order_by("-timestamp", "-usage", "-id").values_list("timestamp", "spend_total").first()
        start = now - timedelta(days=window_days)
        first = readings.filter(timestamp__gte=start).order_by("timestamp", "usage", "id")
        first = first.values_list("timestamp", "spend_total").first()
        if first is None or last is None or last[0] <= first[0]:
            return None
        if first[1] is None or last[1] is None:  # rows bulk-loaded without running totals: sum them
            window = self.spend_windows([key], now, {"w": start}).get(key.pk)
            return window["w"].rate if window else None
        return (last[1] - first[1]) / ((last[0] - first[0]).total_seconds() / 86400.0)

    def latest_for(self, key: ApiKey | None) -> CreditLog | None:
        return self.for_key(key).order_by("-timestamp", "-id").first()

    def latest_by_key(self, keys: models.QuerySet) -> dict[int, CreditLog]:
        """The newest row of this queryset for each of `keys`, by key id, in one query."""
        newest = self.filter(key=OuterRef("pk")).order_by("-timestamp", "-id").values("id")[:1]
        ids = keys.order_by().annotate(log_id=Subquery(newest)).values("log_id")
        return {log.key_id: log for log in self.order_by().filter(id__in=ids)}

    def buckets(self, kind: str, tz, by_key: bool = False, value: str = "usage") -> list[dict]:
        """One dict per time bucket (hour/day/week in `tz`), oldest first: `bucket`, `last_id` (its last
        row: rows are written in time order), `last_at`, `low`/`high` of `value` and the row count `n`."""
        group = ["key_id", "bucket"] if by_key else ["bucket"]
        rows = (
            self.order_by()
            .annotate(bucket=TRUNCATE[kind]("timestamp", tzinfo=tz))
            .values(*group)
            .annotate(last_id=Max("id"), last_at=Max("timestamp"), low=Min(value), high=Max(value), n=Count("id"))
            .order_by(*group)
        )
        return list(rows)

    def last_rows(self, buckets: list[dict]) -> dict[int, CreditLog]:
        """The last row of each bucket from `buckets()`, by id (one query, a few hundred ids at most)."""
        return self.model.objects.in_bulk([b["last_id"] for b in buckets])


class CreditLog(models.Model):
    """One check of one key: the seed's columns plus what today's API needs. Failed checks too."""

    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="logs")
    ok = models.BooleanField(default=True, help_text="False: the check failed, see error")
    # The seed's columns.
    label = models.CharField(max_length=200, blank=True)
    usage = models.FloatField(null=True, blank=True, help_text="All-time spend of the key (USD)")
    credit_limit = models.FloatField(null=True, blank=True, help_text="The key's own cap (USD), null = none")
    remaining = models.FloatField(
        null=True, blank=True, help_text="Headline remaining (USD): the tighter of key and account"
    )
    is_free_tier = models.BooleanField(null=True, blank=True)
    rate_limit = models.TextField(blank=True, help_text="Deprecated by OpenRouter; kept as sent")
    raw_response = models.TextField(blank=True, help_text="The API's JSON answer (never the key)")
    # What the real API adds.
    limit_remaining = models.FloatField(null=True, blank=True, help_text="Key cap left in its window")
    limit_reset = models.CharField(max_length=20, blank=True)
    usage_daily = models.FloatField(null=True, blank=True)
    usage_weekly = models.FloatField(null=True, blank=True)
    usage_monthly = models.FloatField(null=True, blank=True)
    byok_usage = models.FloatField(null=True, blank=True)
    is_management_key = models.BooleanField(null=True, blank=True)
    account_credits = models.FloatField(null=True, blank=True, help_text="/credits total_credits")
    account_usage = models.FloatField(null=True, blank=True, help_text="/credits total_usage")
    account_balance = models.FloatField(null=True, blank=True, help_text="total_credits - total_usage")
    account_note = models.CharField(max_length=200, blank=True, help_text="Why the account balance is unknown")
    # Failure details.
    error = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Derived at write time, so a burn rate over any window is two index look-ups, not a scan.
    spend_total = models.FloatField(
        null=True, blank=True, editable=False, help_text="Reset-aware spend of the key up to this reading (USD)"
    )

    objects = CreditLogQuerySet.as_manager()

    class Meta:
        db_table = "openrouter_credit_log"
        verbose_name = "credit log entry"
        verbose_name_plural = "credit log entries"
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["key", "timestamp"], name="creditlog_key_time"),
            models.Index(fields=["ok", "timestamp"], name="creditlog_ok_time"),
            # The burn-rate window's readings without touching the wide rows (raw_response is inline).
            models.Index(
                fields=["key", "timestamp", "usage"],
                condition=Q(ok=True, usage__isnull=False),
                name="creditlog_key_readings",
            ),
            # The account's usage readings (budget, account burn rate) without touching the wide rows.
            models.Index(fields=["timestamp", "account_usage", "ok"], name="creditlog_account_readings"),
        ]

    def __str__(self) -> str:
        when = self.timestamp.strftime("%Y-%m-%d %H:%M")
        if not self.ok:
            return f"{when} failed: {self.error}"
        return f"{when} {self.label}: {self.remaining_text}"

    @property
    def remaining_text(self) -> str:
        return "unknown" if self.remaining is None else f"${self.remaining:.2f} remaining"


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
        fresh = CreditLog.objects.successful().filter(id__gt=state.last_id).order_by("id")  # a primary-key range
        few = list(fresh.values_list("id", "key_id", "timestamp", "usage", "account_balance")[: FOLD_IN_PYTHON + 1])
        if len(few) > FOLD_IN_PYTHON:
            return self._fold(fresh, state)  # a bulk load: the database groups it
        from zoneinfo import ZoneInfo

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
            return self._fold(CreditLog.objects.successful(), state)

    def _fold(self, logs: CreditLogQuerySet, state: RollupState) -> int:
        from zoneinfo import ZoneInfo

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
            self.model.objects.bulk_update(
                changed, ["last_id", "usage_low", "usage_high", "last_account_id"], batch_size=2000
            )
            top = max(row["last_id"] for row in rows)
            folded = RollupState.objects.filter(pk=state.pk)
            folded.update(last_id=Greatest("last_id", top), refreshed_at=timezone.now())
        return len(rows)


class DailyFigure(models.Model):
    """One key's successful checks of one day in CREDITMON_TIME_ZONE, folded: the Financial page's source.

    A year of five-minute checks is a million log rows but 365 of these per key. Kept current by
    DailyFigure.objects.refresh() (cheap: only rows written since) and rebuilt by `rebuildrollups`.
    """

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="daily_figures")
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
        fresh = CreditLog.objects.filter(id__gt=state.last_id).order_by("id")  # a primary-key range
        few = list(fresh.values_list(*HOURLY_FIELDS)[: FOLD_IN_PYTHON + 1])
        if len(few) > FOLD_IN_PYTHON:
            return self._fold(hourly_aggregates(fresh), state)
        return self._fold(hourly_in_python(few), state)

    def rebuild(self) -> int:
        """Recompute every hourly row from the credit log (bulk loads, retention)."""
        with transaction.atomic():
            self.model.objects.all().delete()
            state, _ = RollupState.objects.update_or_create(name="hourly", defaults={"zone": "UTC", "last_id": 0})
            return self._fold(hourly_aggregates(CreditLog.objects.all()), state)

    def _fold(self, rows: list[dict], state: RollupState) -> int:
        rows = [row for row in rows if row["key_id"] is not None]
        if not rows:
            return 0
        existing = {
            (f.key_id, f.hour): f
            for f in self.model.objects.filter(
                key_id__in={r["key_id"] for r in rows}, hour__gte=min(r["hour"] for r in rows)
            )
        }
        new, changed = [], []
        for row in rows:
            figure = existing.get((row["key_id"], row["hour"]))
            if figure is None:
                new.append(self.model(**{k: v for k, v in row.items() if k != "top"}))
                continue
            merge_hour(figure, row)
            changed.append(figure)
        with transaction.atomic():
            self.model.objects.bulk_create(new, batch_size=2000)
            self.model.objects.bulk_update(changed, HOURLY_MERGED, batch_size=2000)
            top = max(row["top"] for row in rows)
            folded = RollupState.objects.filter(pk=state.pk)
            folded.update(last_id=Greatest("last_id", top), refreshed_at=timezone.now())
        return len(rows)


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


def hourly_aggregates(logs: CreditLogQuerySet) -> list[dict]:
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


class HourlyFigure(models.Model):
    """One key's checks of one UTC hour, folded: /api/history's hourly and daily points read these."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="hourly_figures")
    hour = models.DateTimeField(help_text="Start of the UTC hour")
    checks = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    usage_max = models.FloatField(null=True, blank=True)
    remaining_min = models.FloatField(null=True, blank=True)
    limit_max = models.FloatField(null=True, blank=True)
    balance_min = models.FloatField(null=True, blank=True)
    last_at = models.DateTimeField()

    objects = HourlyFigureQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "hour"], name="hourlyfigure_key_hour")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.hour:%Y-%m-%d %H}h: {self.checks} checks"


class RollupState(models.Model):
    """How far DailyFigure has folded the credit log, and in which zone its days are."""

    name = models.CharField(max_length=20, unique=True)
    zone = models.CharField(max_length=64)
    last_id = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name}: up to #{self.last_id} in {self.zone}"


class ActivityQuerySet(models.QuerySet):
    def between(self, start, end) -> ActivityQuerySet:
        return self.filter(date__gte=start, date__lte=end)

    def account_wide(self) -> ActivityQuerySet:
        """Rows summed over all keys (api_key_hash blank): the account's spend per model."""
        return self.filter(api_key_hash="")

    def per_key(self) -> ActivityQuerySet:
        return self.exclude(api_key_hash="")

    def totals_by(self, field: str, limit: int | None = None) -> list[dict]:
        """Spend and requests per `field` ("model" or "api_key_hash"), biggest first."""
        rows = self.order_by().values(field).annotate(spend=Sum("usage"), calls=Sum("requests"))
        rows = rows.order_by("-spend", field)
        return list(rows[:limit] if limit else rows)

    def daily_by(self, field: str, values: list[str]) -> list[dict]:
        """Daily spend for each of `values` of `field`, oldest first."""
        rows = self.order_by().filter(**{f"{field}__in": values}).values("date", field).annotate(spend=Sum("usage"))
        return list(rows.order_by("date", field))

    def daily_totals(self) -> dict:
        """Daily spend over all rows of this queryset, by date."""
        rows = self.order_by().values("date").annotate(spend=Sum("usage")).order_by("date")
        return {row["date"]: row["spend"] or 0.0 for row in rows}

    def daily_sums(self, field: str) -> list[dict]:
        """Spend and requests per day per `field` ("model" or "api_key_hash"), oldest first: the one grouped
        scan the Financial page derives its totals, top series and daily totals from."""
        rows = self.order_by().values("date", field).annotate(spend=Sum("usage"), calls=Sum("requests"))
        return list(rows.order_by("date", field))


class Activity(models.Model):
    """One row of GET /activity: a UTC day's spend on one model endpoint, for one key (or all keys)."""

    date = models.DateField(db_index=True)
    api_key_hash = models.CharField(max_length=64, blank=True, help_text="Blank: summed over all keys")
    model = models.CharField(max_length=200)
    model_permaslug = models.CharField(max_length=200, blank=True)
    endpoint_id = models.CharField(max_length=100)
    provider_name = models.CharField(max_length=100, blank=True)
    usage = models.FloatField(default=0)
    byok_usage_inference = models.FloatField(default=0)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    fetched_at = models.DateTimeField(default=timezone.now)
    final = models.BooleanField(default=False, help_text="Old enough that OpenRouter will not change it")

    objects = ActivityQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "model"]
        verbose_name = "activity row"
        verbose_name_plural = "activity rows"
        constraints = [
            models.UniqueConstraint(fields=["date", "api_key_hash", "endpoint_id", "model"], name="activity_unique_row")
        ]
        # Per key or account-wide, by day: covering what the Financial page sums (a year is 28,000 rows).
        indexes = [
            models.Index(fields=["api_key_hash", "date", "model", "usage", "requests"], name="activity_covering")
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.model}: ${self.usage:.4f}"


class AlertQuerySet(models.QuerySet):
    def open(self) -> AlertQuerySet:
        return self.filter(resolved_at__isnull=True)

    def worst_first(self) -> AlertQuerySet:
        """CRITICAL, UNKNOWN, WARNING, OK; the newest first within a level."""
        return self.annotate(severity=SEVERITY_ORDER).order_by("-severity", "-opened_at", "-id")

    def by_key(self) -> dict[int | None, list[Alert]]:
        """These alerts grouped by key id (None: account-wide), worst first, in one query."""
        grouped: dict[int | None, list[Alert]] = {}
        for alert in self.select_related("key").worst_first():
            grouped.setdefault(alert.key_id, []).append(alert)
        return grouped


class Alert(models.Model):
    """A condition that went wrong for a key: opens, escalates or de-escalates, and resolves."""

    BALANCE = "balance"
    FORECAST = "forecast"
    SPIKE = "spike"
    FAILURES = "failures"
    STALE = "stale"
    KEY_LIMIT = "key_limit"
    BUDGET = "budget"
    EXPIRY = "expiry"
    MODEL_SPIKE = "model_spike"
    TOPUP_MISSED = "topup_missed"
    RUNAWAY = "runaway"
    CONDITION_CHOICES = [
        (BALANCE, "Balance low"),
        (FORECAST, "Running out soon"),
        (SPIKE, "Spend spike"),
        (FAILURES, "Checks failing"),
        (STALE, "No recent check"),
        (KEY_LIMIT, "Key limit nearly used"),
        (BUDGET, "Monthly budget"),
        (EXPIRY, "Key expiring"),
        (MODEL_SPIKE, "Model spend spike"),
        (TOPUP_MISSED, "Auto top-up missing"),
        (RUNAWAY, "Runaway spend"),
    ]

    key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    condition = models.CharField(max_length=20, choices=CONDITION_CHOICES)
    subject = models.CharField(max_length=200, blank=True, help_text="e.g. the model for a model spike")
    level = models.IntegerField(choices=Level.choices)
    message = models.TextField()
    value = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snoozed_by = models.CharField(max_length=150, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "condition", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="alert_one_open_per_condition",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} {self.get_condition_display()}: {self.message}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def is_silenced(self, now: datetime | None = None) -> bool:
        """Acknowledged until resolved, or snoozed until a time: no reminders then."""
        now = now or timezone.now()
        return self.acknowledged_at is not None or (self.snoozed_until is not None and self.snoozed_until > now)

    def reminder_due(self, now: datetime) -> bool:
        if not self.is_open or self.is_silenced(now) or self.last_notified_at is None:
            return False
        return now - self.last_notified_at >= timedelta(hours=settings.REMIND_INTERVAL_HOURS)


class AlertEvent(models.Model):
    """One transition of an alert: the audit trail shown on the Alerts page."""

    OPENED = "opened"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    UNACKNOWLEDGED = "unacknowledged"
    UNSNOOZED = "unsnoozed"
    TEST = "test"
    KIND_CHOICES = [
        (OPENED, "opened"),
        (ESCALATED, "escalated"),
        (DEESCALATED, "de-escalated"),
        (RESOLVED, "resolved"),
        (REMINDER, "reminder"),
        (ACKNOWLEDGED, "acknowledged"),
        (SNOOZED, "snoozed"),
        (UNACKNOWLEDGED, "acknowledgement withdrawn"),
        (UNSNOOZED, "snooze ended"),
        (TEST, "test notification"),
    ]
    NOTIFYING_KINDS = {OPENED, ESCALATED, DEESCALATED, RESOLVED, REMINDER, TEST}

    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    level = models.IntegerField(choices=Level.choices)
    previous_level = models.IntegerField(choices=Level.choices, null=True, blank=True)
    message = models.TextField()
    user = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "alert event"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.kind}: {self.message}"


class Delivery(models.Model):
    """One notification of one event to one channel; a failed one is retried on the next run."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    STATUS_CHOICES = [(PENDING, "pending"), (SENT, "sent"), (FAILED, "failed")]

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=500, help_text="The Apprise URL with its secrets masked")
    channel_id = models.CharField(max_length=64, help_text="Hash of the full URL, to find it again")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.channel}: {self.status}"


class Lease(models.Model):
    """A named lock with an expiry, so two overlapping monitor runs never both check and notify."""

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at}"


class WatchState(models.Model):
    """The spend watch's recent GET /key readings of one key, rewritten in place (never one row per watch)."""

    key = models.OneToOneField(ApiKey, on_delete=models.CASCADE, related_name="watch_state")
    readings = models.JSONField(default=list, help_text="[[ISO time, cumulative usage], ...] of the last hour")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.key_id}: {len(self.readings)} watch readings"
