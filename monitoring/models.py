"""What the monitor saw and did: keys, the credit log, activity, alerts, their events and deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, connections, models, transaction
from django.db.models import Case, Count, F, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour, TruncWeek
from django.utils import timezone

from . import forecast

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


KEY_HASH_MIN = 8  # a shorter start of a hash names a key too loosely to be taken as its id


class ApiKeyQuerySet(models.QuerySet):
    def watched(self) -> ApiKeyQuerySet:
        """Keys on the surfaces: not retired (still configured, or listed by the management key)."""
        return self.filter(retired_at__isnull=True)

    def with_level_now(self, stale_before: datetime | None) -> ApiKeyQuerySet:
        """`level_now`: the level stored at the last check as the status says it now. Figures never stored, or
        stored before `stale_before` (no check since: the status's stale rule), are UNKNOWN unless CRITICAL."""
        unknown = Q(level__isnull=True) | (Q(figures_at__lt=stale_before) if stale_before is not None else Q())
        level_now = Case(
            When(level=Level.CRITICAL, then=Value(Level.CRITICAL)),
            When(unknown, then=Value(Level.UNKNOWN)),
            default=F("level"),
            output_field=models.SmallIntegerField(),
        )
        return self.annotate(level_now=level_now)

    def worst_first(self, stale_before: datetime | None = None) -> ApiKeyQuerySet:
        """By `level_now`, worst first, then the keys' own order: a page of ten thousand keys without building
        each one's status."""
        rank = Case(*(When(level_now=level, then=Value(n)) for level, n in SEVERITY.items()), default=Value(0))
        return self.with_level_now(stale_before).alias(rank=rank).order_by("-rank", "-is_primary", "name", "id")

    def search(self, wanted: str) -> ApiKeyQuerySet:
        """Keys whose name or label contains `wanted`, or whose hash starts with it."""
        wanted = wanted.strip()
        if not wanted:
            return self
        return self.filter(Q(name__icontains=wanted) | Q(label__icontains=wanted) | Q(hash__startswith=wanted.lower()))

    def named(self, wanted: str) -> ApiKey | None:
        """The key a URL or a command names: its numeric id, its hash, or the start of its hash as every surface
        prints it (at least KEY_HASH_MIN characters, naming one key only); None when nothing or several match."""
        wanted = wanted.strip()
        if wanted.isdigit():
            return self.filter(pk=int(wanted)).first()
        if len(wanted) < KEY_HASH_MIN:
            return None
        found = list(self.filter(hash__startswith=wanted.lower())[:2])
        return found[0] if len(found) == 1 else None


class ApiKey(models.Model):
    """One OpenRouter key being watched, identified by its hash (never the key itself)."""

    SOURCE_CONFIGURED = "configured"  # given directly in the environment
    SOURCE_LISTED = "listed"  # found through the management key's GET /keys
    SOURCE_CHOICES = [(SOURCE_CONFIGURED, "configured"), (SOURCE_LISTED, "listed by /keys")]

    hash = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=300, blank=True)
    label = models.CharField(max_length=200, blank=True, help_text="Masked key as OpenRouter shows it")
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES, default=SOURCE_CONFIGURED)
    is_primary = models.BooleanField(default=False, help_text="The OPENROUTER_API_KEY key")
    is_management_key = models.BooleanField(default=False)
    disabled = models.BooleanField(default=False)
    credit_limit = models.FloatField(null=True, blank=True)
    limit_reset = models.CharField(max_length=20, blank=True)
    workspace_id = models.CharField(max_length=100, blank=True, help_text="The OpenRouter workspace it spends in")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="When OpenRouter last saw it used (/keys)")
    last_use_listed = models.BooleanField(
        default=False, help_text="The listing reports its last use (so an empty last use means never used)"
    )
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(
        null=True, blank=True, help_text="No longer configured nor listed: off the surfaces, history kept"
    )
    retired_reason = models.CharField(max_length=200, blank=True)
    # The key's headline figures as status.build computed them at the last check (status.store_figures), so
    # ten thousand listed keys are ordered, counted and searched in SQL; what a page shows is built live.
    level = models.SmallIntegerField(choices=Level.choices, null=True, blank=True, help_text="At the last check")
    level_reason = models.CharField(max_length=1000, blank=True)
    remaining_usd = models.FloatField(null=True, blank=True)
    usage_usd = models.FloatField(null=True, blank=True)
    limit_usd = models.FloatField(null=True, blank=True)
    days_left = models.FloatField(null=True, blank=True)
    figures_at = models.DateTimeField(null=True, blank=True, help_text="When the stored figures were computed")

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


# The reset rule in SQL, as forecast.spend_between writes it in Python: a drop in usage is a new counter
# (a drop within the API's rounding is no spend).
SPEND_STEP_SQL = (
    f"CASE WHEN {{u}} >= {{prev}} THEN {{u}} - {{prev}} WHEN {{u}} >= {{prev}} - {forecast.ROUNDING_USD:f} THEN 0"
    " ELSE {u} END"
)


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

    def usage_samples_by_key(self, keys: list[ApiKey], since: datetime) -> dict[int, list[tuple[datetime, float]]]:
        """`usage_samples` of each key (by id), in one query."""
        found: dict[int, list[tuple[datetime, float]]] = {key.pk: [] for key in keys}
        rows = self.successful().filter(key__in=keys).since(since).order_by("key_id", "timestamp")
        for key_id, when, usage in rows.values_list("key_id", "timestamp", "usage"):
            found[key_id].append((when, usage))
        return found

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

    def last_rows(self, buckets: list[dict]) -> dict:
        """The last row of each bucket from `buckets()`, by id (one query, a few hundred ids at most), as named
        tuples of the columns the balance lines draw: a year is 365 narrow rows, not 365 model instances."""
        line = ("id", "timestamp", "key_id", "ok", "remaining", "credit_limit", "usage", "account_credits",
                "account_usage", "account_balance", "account_note")  # fmt: skip
        ids = [b["last_id"] for b in buckets]
        return {row.id: row for row in self.model.objects.filter(id__in=ids).values_list(*line, named=True)}


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
    # free_model_daily_requests: the account's daily quota of :free model requests (null: not reported).
    free_limit = models.PositiveIntegerField(null=True, blank=True)
    free_remaining = models.PositiveIntegerField(null=True, blank=True)
    free_used = models.PositiveIntegerField(null=True, blank=True)
    # Layers of budgets[] besides the key's own limit (LimitReading rows); null: not read (a /keys listing).
    budget_layers = models.PositiveSmallIntegerField(null=True, blank=True)
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
            # A key's newest row is an exact look-up here (with id: its order); else PostgreSQL may walk the
            # (ok, timestamp, id) index below backwards looking for the key, the whole table for a new one.
            models.Index(fields=["key", "timestamp", "id"], name="creditlog_key_time_id"),
            # The newest successful check (the account's reading, the pages' "as of"): with id, the newest of the
            # thousands a run of many listed keys writes at one instant is one look-up, not a sort of them all.
            models.Index(fields=["ok", "timestamp", "id"], name="creditlog_ok_time_id"),
            # The burn-rate window's readings without touching the wide rows (raw_response is inline).
            models.Index(
                fields=["key", "timestamp", "usage"],
                condition=Q(ok=True, usage__isnull=False),
                name="creditlog_key_readings",
            ),
            # The account's usage readings (budget, account burn rate) without touching the wide rows.
            models.Index(fields=["timestamp", "account_usage", "ok"], name="creditlog_account_readings"),
            # The newest free-model quota (the advisor): one look-up, not a scan when no check reported it.
            models.Index(fields=["timestamp"], condition=Q(free_limit__isnull=False), name="creditlog_free_quota"),
        ]

    def __str__(self) -> str:
        when = self.timestamp.strftime("%Y-%m-%d %H:%M")
        if not self.ok:
            return f"{when} failed: {self.error}"
        return f"{when} {self.label}: {self.remaining_text}"

    @property
    def remaining_text(self) -> str:
        return "unknown" if self.remaining is None else f"${self.remaining:.2f} remaining"


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
        # Read through the cursor: a year is thousands of small rows, and Django's per-row converters cost more
        # than the query. The columns come in the order asked; SQLite gives the date as text.
        sql, params = rows.order_by("date", field).query.sql_with_params()
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        as_date = date.fromisoformat
        return [
            {"date": day if isinstance(day, date) else as_date(day), field: value, "spend": spend, "calls": calls}
            for day, value, spend, calls in found
        ]


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
            models.Index(fields=["api_key_hash", "date", "model", "usage", "requests"], name="activity_covering"),
            models.Index(fields=["fetched_at"], name="activity_fetched_at"),  # the last sync, monitoring/memo.py
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
    BUDGET_LAYER = "budget_layer"
    FREE_QUOTA = "free_quota"
    FAILURES = "failures"
    STALE = "stale"
    KEY_LIMIT = "key_limit"
    BUDGET = "budget"
    EXPIRY = "expiry"
    MODEL_SPIKE = "model_spike"
    MODEL_EXPIRY = "model_expiry"
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
        (MODEL_EXPIRY, "Model going away"),
        (TOPUP_MISSED, "Auto top-up missing"),
        (RUNAWAY, "Runaway spend"),
        (BUDGET_LAYER, "Budget layer"),
        (FREE_QUOTA, "Free-model quota"),
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
        # Given to the Operators group (and grantable per user in the admin): see monitoring/roles.py.
        permissions = [("operate", "Can act: acknowledge, snooze, Check now, Send test, agent tasks")]
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


class AgentTaskQuerySet(models.QuerySet):
    def in_state(self, state: str, now: datetime) -> AgentTaskQuerySet:
        """Tasks whose current state is `state`: a claim past its expiry counts as open again."""
        expired = Q(state=AgentTask.CLAIMED, claim_expires_at__lte=now)
        if state == AgentTask.OPEN:
            return self.filter(Q(state=AgentTask.OPEN) | expired)
        if state == AgentTask.CLAIMED:
            return self.filter(state=AgentTask.CLAIMED).exclude(expired)
        return self.filter(state=state)

    def active(self) -> AgentTaskQuerySet:
        return self.filter(state__in=[AgentTask.OPEN, AgentTask.CLAIMED])


class AgentTask(models.Model):
    """A unit of work for an agent or a person: one per alert (or opened on its own), with its evidence."""

    TOP_UP = "top_up"
    RAISE_BUDGET = "raise_budget"
    INVESTIGATE_SPIKE = "investigate_spike"
    REPLACE_KEY = "replace_key"
    CHECK_MONITOR = "check_monitor"
    MIGRATE_MODEL = "migrate_model"
    OPTIMIZE_MODELS = "optimize_models"
    KIND_CHOICES = [
        (TOP_UP, "Top up"),
        (RAISE_BUDGET, "Raise a budget"),
        (INVESTIGATE_SPIKE, "Investigate a spike"),
        (REPLACE_KEY, "Replace a key"),
        (CHECK_MONITOR, "Check the monitor"),
        (MIGRATE_MODEL, "Migrate off a model"),
        (OPTIMIZE_MODELS, "Optimise model choice"),
    ]
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    DISMISSED = "dismissed"
    STATE_CHOICES = [(OPEN, "open"), (CLAIMED, "claimed"), (DONE, "done"), (DISMISSED, "dismissed")]
    CLOSED_STATES = (DONE, DISMISSED)

    kind = models.CharField(max_length=30, choices=KIND_CHOICES)
    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=OPEN, db_index=True)
    title = models.CharField(max_length=300)
    body = models.TextField(help_text="Markdown: the evidence, what to do, and when it is done")
    evidence = models.JSONField(default=dict, help_text="The figures as data, read from the status")
    suggested_actions = models.JSONField(default=list)
    done_when = models.TextField(blank=True, help_text="The condition that resolves the alert")
    alert = models.OneToOneField(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="task")
    key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=150, blank=True, help_text="The agent (or person) working on it")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    updated_by = models.CharField(max_length=150, blank=True, help_text="Who made the last change (user or token)")

    objects = AgentTaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "agent task"

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} ({self.state}): {self.title}"

    @property
    def is_closed(self) -> bool:
        return self.state in self.CLOSED_STATES

    def claim_expired(self, now: datetime) -> bool:
        return self.state == self.CLAIMED and self.claim_expires_at is not None and self.claim_expires_at <= now

    def current_state(self, now: datetime) -> str:
        """The state as agents see it: an expired claim is open again."""
        return self.OPEN if self.claim_expired(now) else self.state


class TaskDelivery(models.Model):
    """One attempt to POST one task event to AGENT_WEBHOOK_URL: a retry is a new row with the same body."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    STATUS_CHOICES = [(PENDING, "pending"), (SENT, "sent"), (FAILED, "failed")]

    task = models.ForeignKey(AgentTask, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20, help_text="task.created, task.updated or task.closed")
    message_id = models.CharField(max_length=36, help_text="The same on every attempt of one event")
    attempt = models.PositiveSmallIntegerField(default=1)
    body = models.TextField(help_text="The exact JSON posted (never a key)")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=PENDING, db_index=True)
    retried = models.BooleanField(default=False, help_text="A later attempt was made")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "task deliveries"

    def __str__(self) -> str:
        return f"{self.event} #{self.task_id} attempt {self.attempt}: {self.status}"


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The audit trail is append-only: entries are never changed")


class AuditEntry(models.Model):
    """One state-changing action by a person or a token: who, what, when, from where, on what. Append-only
    (pruned only by the retention policy): written by monitoring/audit.py, shown read-only."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="The username, or the token's role for a bearer token")
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=300, blank=True, help_text="What it acted on, e.g. alert 12: Balance low")
    address = models.GenericIPAddressField(null=True, blank=True, help_text="The caller's address")
    token_role = models.CharField(max_length=20, blank=True, help_text="operator or viewer for a bearer token")
    detail = models.TextField(blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [models.Index(fields=["actor", "action", "created"], name="audit_actor_action_created")]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("The audit trail is append-only: entries are never changed")
        super().save(*args, **kwargs)


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


PRICE = {"max_digits": 24, "decimal_places": 14, "null": True, "blank": True}  # USD per token, as OpenRouter writes it


class CatalogueFetch(models.Model):
    """One attempt at GET /models: a failure is a row with its reason, so the advice can say how old its prices are."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    models_count = models.PositiveIntegerField(default=0)
    skipped = models.TextField(blank=True, help_text="Models left out, one per line with the reason")
    price_changes = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "catalogue fetch"

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {'ok' if self.ok else self.error}"


class CatalogueModelQuerySet(models.QuerySet):
    def listed(self) -> CatalogueModelQuerySet:
        return self.filter(listed=True)


class CatalogueModel(models.Model):
    """A model of OpenRouter's public catalogue as last fetched: its context, capabilities and list prices."""

    model_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    context_length = models.BigIntegerField(null=True, blank=True)
    input_modalities = models.JSONField(default=list)
    output_modalities = models.JSONField(default=list)
    supported_parameters = models.JSONField(default=list)
    expiration_date = models.DateField(null=True, blank=True)
    prompt_price = models.DecimalField(**PRICE)
    completion_price = models.DecimalField(**PRICE)
    request_price = models.DecimalField(**PRICE)
    internal_reasoning_price = models.DecimalField(**PRICE)
    input_cache_read_price = models.DecimalField(**PRICE)
    input_cache_write_price = models.DecimalField(**PRICE)
    fetched_at = models.DateTimeField(default=timezone.now)
    listed = models.BooleanField(default=True, help_text="False: missing from the latest catalogue")

    objects = CatalogueModelQuerySet.as_manager()

    class Meta:
        ordering = ["model_id"]
        verbose_name = "catalogue model"

    def __str__(self) -> str:
        return self.model_id

    def prices(self) -> dict:
        """The list prices by OpenRouter's names (prompt, completion, ...), None when not given."""
        return {name: getattr(self, f"{name}_price") for name in CATALOGUE_PRICES}


CATALOGUE_PRICES = ("prompt", "completion", "request", "internal_reasoning", "input_cache_read", "input_cache_write")


class CataloguePrice(models.Model):
    """A model's list prices from the moment they were first seen or changed: the price history."""

    model = models.ForeignKey(CatalogueModel, on_delete=models.CASCADE, related_name="price_history")
    changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    first = models.BooleanField(default=False, help_text="The prices when the model was first seen, not a change")
    prompt_price = models.DecimalField(**PRICE)
    completion_price = models.DecimalField(**PRICE)
    request_price = models.DecimalField(**PRICE)
    internal_reasoning_price = models.DecimalField(**PRICE)
    input_cache_read_price = models.DecimalField(**PRICE)
    input_cache_write_price = models.DecimalField(**PRICE)

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = "catalogue price"

    def __str__(self) -> str:
        return f"{self.model_id} {self.changed_at:%Y-%m-%d}"

    def prices(self) -> dict:
        return {name: getattr(self, f"{name}_price") for name in CATALOGUE_PRICES}


# The rollups (daily and hourly figures) live in their own module; importing them here registers their models.
from .budgets import LimitReading, Workspace, WorkspaceSpend  # noqa: E402, F401
from .rollups import DailyFigure, HourlyFigure, RollupState, UtcDailyFigure, aware, hourly_aggregates  # noqa: E402, F401
