"""Budget layers as read: one `LimitReading` per layer of `budgets[]` per successful check of a key.

A layer is a guardrail (scope `api_key`, `member`, `workspace_default_*`), a workspace budget, or the key's
own limit (`key_limit`). Its identity (scope, budget id, guardrail id) is kept across its resets, so its
own spend growth gives its rate. Below the models module, like the rollups: registered from there.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import models

KEY_SCOPED = {"key_limit", "api_key", "workspace_default_key"}  # spent by this key alone: the key's rate fits
SCOPE_WORDS = {
    "key_limit": "the key's own limit",
    "api_key": "guardrail",
    "member": "member budget",
    "workspace": "workspace budget",
    "workspace_default_key": "workspace default key budget",
    "workspace_default_member": "workspace default member budget",
}


class LimitReadingQuerySet(models.QuerySet):
    def latest_for_logs(self, log_ids: list[int]) -> dict[int, list[LimitReading]]:
        """The layers of each check, in enforcement order, by credit log id (one query)."""
        found: dict[int, list[LimitReading]] = {}
        for reading in self.filter(log_id__in=log_ids).order_by("log_id", "position"):
            found.setdefault(reading.log_id, []).append(reading)
        return found

    def samples(self, key_ids: list[int], now: datetime, days: float) -> dict[tuple, list[tuple[datetime, float]]]:
        """(key id, scope, budget id, guardrail id) -> [(time, spend_usd)] over the last `days`, oldest first."""
        rows = (
            self.filter(key_id__in=key_ids, timestamp__gte=now - timedelta(days=days), timestamp__lte=now)
            .order_by("timestamp", "id")
            .values_list("key_id", "scope", "budget_id", "guardrail_id", "timestamp", "spend_usd")
        )
        found: dict[tuple, list] = {}
        for key_id, scope, budget_id, guardrail_id, when, spend in rows:
            found.setdefault((key_id, scope, budget_id, guardrail_id), []).append((when, spend))
        return found


class LimitReading(models.Model):
    """One budget layer of one check: its limit, spend and what is left in its window."""

    log = models.ForeignKey("monitoring.CreditLog", on_delete=models.CASCADE, related_name="limit_readings")
    key = models.ForeignKey("monitoring.ApiKey", on_delete=models.CASCADE, related_name="limit_readings")
    timestamp = models.DateTimeField()
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in which OpenRouter enforces it")
    scope = models.CharField(max_length=30)
    budget_id = models.CharField(max_length=100, blank=True)
    guardrail_id = models.CharField(max_length=100, blank=True)
    include_byok = models.BooleanField(default=False)
    limit_usd = models.FloatField()
    spend_usd = models.FloatField()
    remaining_usd = models.FloatField()
    reset_interval = models.CharField(max_length=20, blank=True, help_text="Blank: a lifetime budget")
    resets_at = models.DateTimeField(null=True, blank=True)
    effective = models.BooleanField(default=False, help_text="OpenRouter's effective_budget: it blocks first")

    objects = LimitReadingQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "position"]
        verbose_name = "budget layer reading"
        indexes = [models.Index(fields=["key", "timestamp"], name="limitreading_key_time")]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M} {self.scope}: ${self.remaining_usd:.2f} of ${self.limit_usd:.2f} left"

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.scope, self.budget_id, self.guardrail_id)


class WorkspaceSpendQuerySet(models.QuerySet):
    def daily_by_workspace(self, since: date | None = None) -> dict[str, dict[date, float]]:
        """Spend per workspace per UTC day (GET /activity?group_by=workspace), oldest first within each."""
        rows = self.order_by("workspace_id", "date")
        if since is not None:
            rows = rows.filter(date__gte=since)
        found: dict[str, dict[date, float]] = {}
        for workspace_id, day, usage in rows.values_list("workspace_id", "date", "usage"):
            found.setdefault(workspace_id, {})[day] = usage
        return found


class Workspace(models.Model):
    """An OpenRouter workspace seen through the management key (GET /workspaces)."""

    workspace_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200, blank=True)
    last_seen = models.DateTimeField()
    budgets = models.JSONField(default=list, blank=True, help_text="GET /workspaces/{id}/budgets, last read")

    class Meta:
        ordering = ["name", "workspace_id"]

    def __str__(self) -> str:
        return self.name or self.workspace_id


class WorkspaceSpend(models.Model):
    """One workspace's spend on one completed UTC day."""

    date = models.DateField()
    workspace_id = models.CharField(max_length=100)
    usage = models.FloatField(default=0)
    requests = models.PositiveIntegerField(default=0)
    fetched_at = models.DateTimeField()

    objects = WorkspaceSpendQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "workspace_id"]
        verbose_name = "workspace spend"
        constraints = [models.UniqueConstraint(fields=["date", "workspace_id"], name="workspacespend_unique_day")]
        indexes = [models.Index(fields=["fetched_at"], name="workspacespend_fetched_at")]  # monitoring/memo.py

    def __str__(self) -> str:
        return f"{self.date} {self.workspace_id}: ${self.usage:.2f}"
