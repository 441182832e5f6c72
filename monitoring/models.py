"""What the monitor saw and did: keys, the credit log, activity, alerts, their events and deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncWeek
from django.utils import timezone

# Chart buckets: each page aggregates in the database to one row per bucket, never one per check.
TRUNCATE = {"hour": TruncHour, "day": TruncDay, "week": TruncWeek}


class Level(models.IntegerChoices):
    """Alert levels in the monitoring-plugin order; the value is also the CLI exit code."""

    OK = 0, "OK"
    WARNING = 1, "WARNING"
    CRITICAL = 2, "CRITICAL"
    UNKNOWN = 3, "UNKNOWN"


# Severity for escalation: UNKNOWN (monitor blind) ranks between WARNING and CRITICAL.
SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.CRITICAL: 3}


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

    class Meta:
        ordering = ["-is_primary", "name", "id"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.label or self.hash[:12]


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

    objects = CreditLogQuerySet.as_manager()

    class Meta:
        db_table = "openrouter_credit_log"
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["key", "timestamp"], name="creditlog_key_time"),
            models.Index(fields=["ok", "timestamp"], name="creditlog_ok_time"),
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
        constraints = [
            models.UniqueConstraint(
                fields=["date", "api_key_hash", "endpoint_id", "model"], name="activity_unique_row"
            )
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.model}: ${self.usage:.4f}"


class AlertQuerySet(models.QuerySet):
    def open(self) -> AlertQuerySet:
        return self.filter(resolved_at__isnull=True)

    def by_key(self) -> dict[int | None, list[Alert]]:
        """These alerts grouped by key id (None: account-wide), worst first, in one query."""
        grouped: dict[int | None, list[Alert]] = {}
        for alert in self.select_related("key").order_by("-level", "-opened_at"):
            grouped.setdefault(alert.key_id, []).append(alert)
        for alerts in grouped.values():
            alerts.sort(key=lambda a: SEVERITY[Level(a.level)], reverse=True)
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
    TEST = "test"
    KIND_CHOICES = [
        (OPENED, "opened"),
        (ESCALATED, "escalated"),
        (DEESCALATED, "de-escalated"),
        (RESOLVED, "resolved"),
        (REMINDER, "reminder"),
        (ACKNOWLEDGED, "acknowledged"),
        (SNOOZED, "snoozed"),
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
