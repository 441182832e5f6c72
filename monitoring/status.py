"""One home for the state of every watched key and of the account: level, figures and forecast.

Built once from the database (a constant number of queries, whatever the history or the number of
keys); the CLI report and `--json`, the pages, the JSON API, `/metrics`, the alert rules and the
notification texts all read it, none recomputes. The level of a key is the worst of its conditions:
the last check, the balance, the forecast and staleness.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django_q.models import Schedule

from . import forecast, outlook
from .budgets import KEY_SCOPED, SCOPE_WORDS
from .bulk import update_rows
from .models import Activity, Alert, ApiKey, CreditLog, Level, LimitReading, aware, severity, worst_level
from .schedule import SCHEDULE_NAME

# Burn-rate windows shown on every surface: (label, days). The forecast uses BURN_RATE_WINDOW_DAYS.
WINDOWS = {"1d": 1, "7d": 7, "30d": 30}
HASH_PREFIX = 12  # enough to tell keys apart, useless for anything else
ACCOUNT_HASH = ""  # Activity.api_key_hash of the account-wide rows
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "since the last success" for a key that never had one
FULL_WINDOW_SHARE = 0.9  # readings spanning this share of the window count as the whole window
NO_BALANCE_HINT = "the key has no limit: set OPENROUTER_MANAGEMENT_KEY to read the account balance"
ACCOUNT_UNKNOWN = "account figures unknown: set OPENROUTER_MANAGEMENT_KEY to read the account balance"
FETCH_FAILED = "account balance unavailable"  # how monitor.fetch_account begins the note of a failed /credits
RESET_PERIODS = {"daily": "day", "weekly": "week", "monthly": "month"}
# The conditions the status computes itself; an open alert of any other condition adds its level.
OWN_CONDITIONS = {Alert.BALANCE, Alert.FORECAST, Alert.FAILURES, Alert.STALE, Alert.BUDGET_LAYER, Alert.FREE_QUOTA}
LEVEL_CSS = {Level.OK: "ok", Level.WARNING: "warning", Level.CRITICAL: "critical", Level.UNKNOWN: "unknown"}


def money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def span_text(days: float) -> str:
    if days >= 1:
        return f"{days:.1f} days"
    hours = days * 24
    return f"{hours:.1f} hours" if hours >= 1 else f"{hours * 60:.0f} minutes"


def min_span_text() -> str:
    minutes = settings.BURN_RATE_MIN_SPAN_MINUTES
    return f"{minutes / 60:g} hour" + ("s" if minutes != 60 else "") if minutes % 60 == 0 else f"{minutes:g} minutes"


# --- the level rules (the alert rules add hysteresis on top of these) ---------------------------


def balance_bounds(threshold: float | None = None) -> tuple[float, float]:
    """(warning below, critical at or below): the dollars balance_level compares with, for surfaces that print them."""
    return settings.OPENROUTER_CREDIT_THRESHOLD if threshold is None else threshold, settings.OPENROUTER_MIN_BALANCE


def forecast_bounds() -> tuple[float, float]:
    """(warning below, critical below): the days left forecast_level compares with."""
    return settings.FORECAST_WARNING_DAYS, settings.FORECAST_CRITICAL_DAYS


def balance_level(remaining: float | None, threshold: float | None = None) -> tuple[int, str]:
    """Warning below the threshold, critical at or below the minimum balance (the seed's check_threshold)."""
    threshold, minimum = balance_bounds(threshold)
    if remaining is None:
        return Level.UNKNOWN, f"Balance unknown: {NO_BALANCE_HINT}"
    if remaining <= minimum:
        if minimum > 0:
            message = f"Credits at or below the minimum balance: {money(remaining)} (minimum {money(minimum)})"
            return Level.CRITICAL, message
        return Level.CRITICAL, f"Credits exhausted: {money(remaining)} remaining"
    if remaining < threshold:
        return Level.WARNING, f"Credits low: {money(remaining)} remaining (threshold {money(threshold)})"
    return Level.OK, "Credits OK"


def forecast_level(days_left: float | None) -> int:
    if days_left is None:
        return Level.OK  # not spending, or not known: never "running out" on a guess
    warning, critical = forecast_bounds()
    if days_left < critical:
        return Level.CRITICAL
    if days_left < warning:
        return Level.WARNING
    return Level.OK


def failed_check_level(log: CreditLog) -> tuple[int, str]:
    """A rejected key (401) or an empty account (402) is CRITICAL at once: the service using it fails too."""
    if log.http_status == 401:
        return Level.CRITICAL, (
            f"{log.error}. Create a new key at {settings.OPENROUTER_KEYS_URL} and update OPENROUTER_API_KEY"
            if "openrouter.ai/keys" not in log.error
            else log.error
        )
    if log.http_status == 402:
        return Level.CRITICAL, (
            f"{log.error}. Top up at {settings.OPENROUTER_TOPUP_URL}"
            if settings.OPENROUTER_TOPUP_URL not in log.error
            else log.error
        )
    if log.http_status in (402, 403) and budget_refusal(log.error):
        return Level.CRITICAL, f"{log.error}. {RAISE_HINT}"
    return Level.UNKNOWN, log.error


def budget_refusal(error: str) -> bool:
    """A 403 (or a guardrail's 402) that names a budget, a limit or a guardrail: the key is refused now.
    A 403 because the endpoint needs a management key is not one."""
    said = re.match(r"OpenRouter API error \(\d+\) \((.*)\): ", error)  # what OpenRouter said, not our advice
    words = (said.group(1) if said else "" if error.startswith("OpenRouter API error") else error).lower()
    return "management" not in words and any(word in words for word in ("budget", "limit", "guardrail"))


RAISE_HINT = (
    "Raise the layer that is spent or wait for its reset: a guardrail in OpenRouter's Guardrails settings, "
    "a member or workspace budget with the workspace's admin"
)


class LevelWords:
    """The level's label and CSS class, for whatever has a `level` (a key, the account, everything)."""

    level: int

    @property
    def level_name(self) -> str:
        return Level(self.level).label

    @property
    def level_css(self) -> str:
        return LEVEL_CSS[Level(self.level)]


# --- burn rates ---------------------------------------------------------------------------------


@dataclass
class BurnRate:
    """A spend rate with where it came from and the span it covers, so every surface can label it."""

    rate: float | None
    source: str = ""  # "checks", "activity", or "" when unknown
    span_days: float = 0.0
    window_days: float = 7

    @property
    def known(self) -> bool:
        return self.rate is not None

    @property
    def full_window(self) -> bool:
        """The readings fill the window (nearly): the rate may be called the window's average."""
        return self.source == "checks" and self.span_days >= FULL_WINDOW_SHARE * self.window_days

    @property
    def window_text(self) -> str:
        """What the rate averages over, in words: "7-day average", "over the last 2.3 days"."""
        if self.rate is None:
            return ""
        if self.source == "activity":
            return f"from stored activity, last {self.span_days:g} day{'s' if self.span_days != 1 else ''}"
        if self.full_window:
            return f"{self.window_days:g}-day average"
        return f"over the last {span_text(self.span_days)}"

    @property
    def unknown_text(self) -> str:
        return f"unknown (need readings over at least {min_span_text()})"


def rate_from_span(spent: float | None, first: datetime | None, last: datetime | None, window: float) -> BurnRate:
    """Spend over the time the readings span, when they span at least BURN_RATE_MIN_SPAN_MINUTES."""
    if spent is None or first is None or last is None or last <= first:
        return BurnRate(None, window_days=window)
    span = (last - first).total_seconds() / forecast.SECONDS_PER_DAY
    if span * 1440 < settings.BURN_RATE_MIN_SPAN_MINUTES:
        return BurnRate(None, window_days=window)
    return BurnRate(spent / span, "checks", span, window)


def activity_rates(
    targets: dict[str, datetime | None], now: datetime, windows: dict[str, float]
) -> dict[str, dict[str, BurnRate]]:
    """Average daily spend per target hash and window from stored /activity (completed UTC days), one query.

    A target with no activity ever stored is absent (not synced: unknown, never zero). `targets` maps a
    hash to the key's creation time: a key made three days ago has three days of spend, not seven.
    """
    if not targets or not windows:
        return {}
    today = now.astimezone(UTC).date()
    firsts = {label: today - timedelta(days=max(1, int(days))) for label, days in windows.items()}
    sums = {
        f"w_{n}": Sum("usage", filter=Q(date__gte=first, date__lt=today)) for n, first in enumerate(firsts.values())
    }
    rows = (
        Activity.objects.filter(api_key_hash__in=list(targets))
        .order_by()
        .values("api_key_hash")
        .annotate(newest=Max("date"), **sums)
    )
    found: dict[str, dict[str, BurnRate]] = {}
    for row in rows:
        created = targets[row["api_key_hash"]]
        found[row["api_key_hash"]] = rates = {}
        for n, (label, first) in enumerate(firsts.items()):
            start = max(first, created.astimezone(UTC).date()) if created is not None else first
            days = (today - start).days
            if days > 0:
                rates[label] = BurnRate((row[f"w_{n}"] or 0.0) / days, "activity", days, windows[label])
    return found


def reset_time(now: datetime, period: str) -> datetime | None:
    """When a key's limit window (daily/weekly/monthly, UTC) next resets."""
    day = now.astimezone(UTC).date()
    if period == "daily":
        nxt = day + timedelta(days=1)
    elif period == "weekly":
        nxt = day + timedelta(days=7 - day.weekday())
    elif period == "monthly":
        nxt = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    else:
        return None
    return datetime.combine(nxt, time.min, tzinfo=UTC)


# --- the account ------------------------------------------------------------------------------


@dataclass
class AccountStatus(LevelWords):
    """The shared balance all keys draw on (GET /credits with a management key)."""

    known: bool
    note: str = ""
    balance: float | None = None
    credits: float | None = None
    usage: float | None = None
    checked_at: datetime | None = None
    burn: BurnRate = field(default_factory=lambda: BurnRate(None))
    days_left: float | None = None
    exhaustion_date: datetime | None = None
    level: int = Level.OK
    message: str = ""
    alerts: list[Alert] = field(default_factory=list)
    # When the newest check could not read /credits: the balance read before, shown only with its age.
    last_balance: float | None = None
    last_balance_at: datetime | None = None

    @property
    def burn_rate(self) -> float | None:
        return self.burn.rate

    @property
    def stale(self) -> bool:
        """The balance shown is an older reading (the newest fetch failed): every surface says "as of"."""
        return not self.known and self.last_balance is not None

    @property
    def as_of_text(self) -> str:
        """ "last known $69.50 as of 2026-12-04 15:38 UTC", or "" when nothing older is known."""
        if not self.stale:
            return ""
        return f"last known {money(self.last_balance)} as of {self.last_balance_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"

    def as_dict(self) -> dict:
        return {
            "known": self.known,
            "note": self.note or None,
            "level": Level(self.level).label if self.known else None,
            "message": self.message or None,
            "balance": _round(self.balance),
            "total_credits": _round(self.credits),
            "total_usage": _round(self.usage),
            "checked_at": _iso(self.checked_at),
            "burn_rate_per_day": _round(self.burn.rate, 4),
            "burn_rate_window": self.burn.window_text or self.burn.unknown_text,
            "days_left": _round(self.days_left, 1),
            "exhaustion_date": _iso(self.exhaustion_date),
            "open_alerts": [alert_dict(a) for a in self.alerts],
            "stale": self.stale,
            "last_known_balance": _round(self.last_balance),
            "last_known_at": _iso(self.last_balance_at),
        }


def account_status(
    now: datetime, threshold: float | None, alerts: list[Alert], activity: BurnRate | None
) -> AccountStatus:
    """The latest account reading, and its rate from total_usage deltas (else stored account activity)."""
    window = settings.BURN_RATE_WINDOW_DAYS
    readings = CreditLog.objects.filter(ok=True, account_balance__isnull=False, timestamp__lte=now)
    fields = ("timestamp", "account_balance", "account_credits", "account_usage", "account_note")
    # The newest successful check of a watched key: an old reading is not today's balance (the management
    # key removed since, every key retired), so only a check that read the account now makes it known.
    newest = CreditLog.objects.filter(ok=True, timestamp__lte=now, key__retired_at__isnull=True)
    latest = newest.order_by("-timestamp", "-id").values_list(*fields).first()
    if latest is None or latest[1] is None:
        note = (latest[4] if latest else "") or ACCOUNT_UNKNOWN
        before = None
        if note.startswith(FETCH_FAILED):  # a failed fetch: the reading before it, with its age, beside the reason
            before = readings.order_by("-timestamp", "-id").values_list("timestamp", "account_balance").first()
        last_at, last = before or (None, None)
        return AccountStatus(known=False, note=note, alerts=alerts, last_balance=last, last_balance_at=last_at)
    when, balance, credits, usage, _ = latest
    first = (
        readings.filter(timestamp__gte=now - timedelta(days=window), account_usage__isnull=False)
        .order_by("timestamp", "id")
        .values_list("timestamp", "account_usage")
        .first()
    )
    burn = BurnRate(None, window_days=window)
    if first is not None and usage is not None:  # total_usage only grows: the window's ends give its spend
        burn = rate_from_span(max(usage - first[1], 0.0), first[0], when, window)
    if burn.rate is None and activity is not None:
        burn = activity
    days_left = forecast.days_until_exhaustion(balance, burn.rate)
    level, message = balance_level(balance, threshold)
    message = message.replace("Credits", "Account credits", 1) if level != Level.OK else "Account balance OK"
    runs_out = forecast_level(days_left)
    if severity(runs_out) > severity(level) and balance > settings.OPENROUTER_MIN_BALANCE:
        level = runs_out
        message = f"The account balance runs out in {days_left:.1f} days at {money(burn.rate)}/day"
    return AccountStatus(
        known=True,
        balance=balance,
        credits=credits,
        usage=usage,
        checked_at=when,
        burn=burn,
        days_left=days_left,
        exhaustion_date=forecast.exhaustion_date(now, days_left),
        level=level,
        message=message,
        alerts=alerts,
    )


def month_to_date_spend(now: datetime) -> float:
    """Account spend this month (account_month_to_date's figure): what the budget alert and Financial read."""
    return account_month_to_date(now)[0]


def account_month_to_date(now: datetime) -> tuple[float, str]:
    """(account spend this month, where it comes from): "checks" when the logged account readings reach back
    before the month began (total_usage only grows: the difference is the spend, every key's included, over
    the same span as each key's own this-month figure); else "activity", stored activity for the completed
    days and the logged checks for today."""
    tz = reporting_zone()
    month_start, _ = forecast.month_bounds(now, tz)
    readings = CreditLog.objects.filter(ok=True, account_usage__isnull=False)
    latest = readings.filter(timestamp__lte=now).order_by("-timestamp", "-id").values_list("account_usage").first()
    base = (
        readings.filter(timestamp__lt=month_start)
        .order_by("-timestamp", "-id")
        .values_list("account_usage", flat=True)
        .first()
    )
    if latest is not None and base is None and not Activity.objects.filter(api_key_hash=ACCOUNT_HASH).exists():
        # No activity to fill the days before the log began: the readings this month are all there is.
        base = (
            readings.filter(timestamp__gte=month_start)
            .order_by("timestamp", "id")
            .values_list("account_usage", flat=True)[0]
        )
    if latest is not None and base is not None:
        return forecast.spend_between(base, latest[0]), "checks"
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
    today = readings.filter(timestamp__gte=midnight, timestamp__lte=now).values_list("timestamp", "account_usage")
    latest = today.order_by("-timestamp").first()
    if latest is None:
        return completed, "activity"
    # The last reading before midnight, or the first of today when the log starts today.
    before = readings.filter(timestamp__lt=midnight).order_by("-timestamp").values_list("timestamp", "account_usage")
    before = before.first() or today.order_by("timestamp").first()
    return completed + forecast.spend_between(before[1], latest[1]), "activity"


def reporting_zone() -> ZoneInfo:
    return ZoneInfo(settings.CREDITMON_TIME_ZONE)


# --- budget layers: every limit that can refuse a request -----------------------------------

LISTED_LAYERS_NOTE = "only the key's own cap is known: watch the key directly to see its budgets"
FREE_QUOTA_WARNING_SHARE = 0.10  # at most this share of the free-model quota left warns


def short_id(value: str) -> str:
    return value if len(value) <= 8 else f"{value[:7]}…"


def when_text(when: datetime | None, interval: str = "") -> str:
    if when is None:
        return "never"
    when = when.astimezone(UTC)
    return f"{when:%H:%M} UTC" if interval == "daily" else f"{when:%Y-%m-%d %H:%M} UTC"


@dataclass
class LimitStatus(LevelWords):
    """One budget layer of a key as every surface shows it: figures, forecast within its window, level."""

    scope: str
    budget_id: str
    guardrail_id: str
    include_byok: bool
    limit_usd: float
    spent_usd: float
    remaining_usd: float
    reset_interval: str  # "" = lifetime
    resets_at: datetime | None
    rate: float | None = None
    rate_source: str = ""  # "layer" (its own readings), "key" (the key's rate), "" unknown
    outlook: forecast.LayerForecast = field(default_factory=lambda: forecast.LayerForecast(None, None))
    level: int = Level.OK
    rule: str = ""  # which rule set the level: "spent", "forecast", "share"
    message: str = ""
    effective: bool = False  # OpenRouter's effective_budget
    binding: bool = False

    @property
    def kind(self) -> str:
        return SCOPE_WORDS.get(self.scope, self.scope)

    @property
    def name(self) -> str:
        """The layer as the person who set it up knows it: "guardrail gr_7c1e… (daily $10.00, $6.00 spent, ...)"."""
        ident = self.guardrail_id or self.budget_id
        head = f"{self.kind} {short_id(ident)}" if ident else self.kind
        window = self.reset_interval or "lifetime"
        resets = f", resets {when_text(self.resets_at, self.reset_interval)}" if self.resets_at else ""
        return f"{head} ({window} {money(self.limit_usd)}, {money(self.spent_usd)} spent{resets})"

    @property
    def blocks_at(self) -> datetime | None:
        return self.outlook.blocks_at

    @property
    def days_left(self) -> float | None:
        return self.outlook.days_left

    @property
    def spent_percent(self) -> float:
        return min(self.spent_usd / self.limit_usd * 100, 100.0) if self.limit_usd > 0 else 100.0

    @property
    def forecast_text(self) -> str:
        """ "blocks at 20:00 UTC, 4 h 0 min before it resets at 00:00 UTC", or "holds until the reset: ..."."""
        if self.remaining_usd <= 0:
            return f"blocked until {when_text(self.resets_at)}" if self.resets_at else "blocked: lifetime budget spent"
        found = self.outlook
        if found.blocks_at is not None:
            interval = self.reset_interval  # a daily layer's times are today's: the hour says it
            text = f"blocks at {when_text(found.blocks_at, interval)}"
            if self.resets_at is not None:
                gap = (self.resets_at - found.blocks_at).total_seconds() / 60
                text += f", {int(gap // 60)} h {int(gap % 60)} min before it resets at "
                text += when_text(self.resets_at, interval)
            return text
        if found.holds and found.projected is not None:
            return f"holds until the reset: {money(found.projected)} of {money(self.limit_usd)} projected"
        if found.holds:
            return "holds: nothing spent at the current rate"
        return f"forecast unknown (need readings over at least {min_span_text()})"

    def as_dict(self) -> dict:
        return {
            "scope": self.scope,
            "name": self.name,
            "budget_id": self.budget_id or None,
            "guardrail_id": self.guardrail_id or None,
            "include_byok": self.include_byok,
            "limit_usd": _round(self.limit_usd),
            "spent_usd": _round(self.spent_usd),
            "remaining_usd": _round(self.remaining_usd),
            "reset_interval": self.reset_interval or None,
            "resets_at": _iso(self.resets_at),
            "rate_per_day": _round(self.rate, 4),
            "rate_source": self.rate_source or None,
            "days_left": _round(self.days_left, 2),
            "blocks_at": _iso(self.blocks_at),
            "forecast": self.forecast_text,
            "level": self.level_name,
            "rule": self.rule or None,
            "message": self.message or None,
            "effective": self.effective,
            "binding": self.binding,
        }


def layer_level(layer: LimitStatus, percents: list[float]) -> tuple[int, str, str]:
    """(level, rule, message): spent is CRITICAL at once; a forecast block takes the cap's horizons; the share
    spent in the window warns at BUDGET_ALERT_PERCENTS (100 % is critical). The worst rule wins, the forecast
    on a tie (it usually warns first), and the message says which rule fired."""
    if layer.remaining_usd <= 0:
        return Level.CRITICAL, "spent", f"{layer.name} is spent: {layer.forecast_text}. {RAISE_HINT}"
    found = [(Level.OK, "", "")]
    if layer.days_left is not None:
        level = forecast_level(layer.days_left)
        found.append((level, "forecast", f"{layer.name} {layer.forecast_text} (forecast at {money(layer.rate)}/day)"))
    reached = [p for p in percents if layer.spent_percent >= p - 1e-9]
    if reached:
        level = Level.CRITICAL if reached[-1] >= 100 else Level.WARNING
        found.append((level, "share", f"{layer.name}: {reached[-1]:g}% of its window spent"))
    return max(found, key=lambda item: severity(item[0]))


def key_limit_layer(log: CreditLog, now: datetime) -> LimitStatus | None:
    """The key's own cap as a layer (`key_limit`), from the check's own columns (no extra query)."""
    if log.credit_limit is None or log.limit_remaining is None:
        return None
    return LimitStatus(
        scope="key_limit",
        budget_id="",
        guardrail_id="",
        include_byok=False,
        limit_usd=log.credit_limit,
        spent_usd=max(log.credit_limit - log.limit_remaining, 0.0),
        remaining_usd=log.limit_remaining,
        reset_interval=log.limit_reset or "",
        resets_at=reset_time(now, log.limit_reset or ""),
    )


def layer_statuses(key_status: KeyStatus) -> list[LimitStatus]:
    """Every layer of the key's newest success, forecast at its own rate (else the key's, when key-scoped)."""
    log, now = key_status.success, key_status.now
    found = []
    own = key_limit_layer(log, now)
    if own is not None:
        found.append(own)
    min_span = settings.BURN_RATE_MIN_SPAN_MINUTES / 1440
    for reading in key_status.layers:
        if reading.scope == "key_limit":
            continue  # the key's own cap, above, from the check's columns
        samples = key_status.layer_samples.get(reading.identity, [])
        layer = LimitStatus(
            scope=reading.scope,
            budget_id=reading.budget_id,
            guardrail_id=reading.guardrail_id,
            include_byok=reading.include_byok,
            limit_usd=reading.limit_usd,
            spent_usd=reading.spend_usd,
            remaining_usd=reading.remaining_usd,
            reset_interval=reading.reset_interval,
            resets_at=reading.resets_at,
            effective=reading.effective,
        )
        layer.rate = forecast.layer_rate(samples, now, settings.BURN_RATE_WINDOW_DAYS, min_span)
        layer.rate_source = "layer" if layer.rate is not None else ""
        found.append(layer)
    percents = list(settings.BUDGET_ALERT_PERCENTS)
    for layer in found:
        if layer.rate is None and layer.scope in KEY_SCOPED and key_status.burn.known:
            layer.rate, layer.rate_source = key_status.burn.rate, "key"
        layer.outlook = forecast.layer_forecast(layer.remaining_usd, layer.spent_usd, layer.rate, now, layer.resets_at)
        layer.level, layer.rule, layer.message = layer_level(layer, percents)
    return found


def free_quota_condition(key_status: KeyStatus) -> tuple[int, str] | None:
    """The free-model quota: WARNING at <= 10 % left, CRITICAL at 0, for a key that uses :free models."""
    log = key_status.success
    if log is None or log.free_limit is None or log.free_remaining is None or not log.free_limit:
        return None
    resets = reset_time(key_status.now, "daily")
    words = (
        f"Free-model quota: {log.free_remaining} of {log.free_limit} requests left today "
        f"(resets {when_text(resets)}; requests to :free models are refused at 0)"
    )
    if log.free_remaining > FREE_QUOTA_WARNING_SHARE * log.free_limit:
        return None  # plenty left: nothing to say (an open alert resolves when this is absent)
    if not (log.free_used or key_status.uses_free_models_stored()):
        return None  # the key never uses :free models: their quota stops nothing it does
    return (Level.CRITICAL if log.free_remaining <= 0 else Level.WARNING), words


# --- one key ----------------------------------------------------------------------------------


@dataclass
class KeyStatus(LevelWords):
    """One key as every surface shows it."""

    key: ApiKey | None
    log: CreditLog | None  # the newest check, failed or not
    success: CreditLog | None  # the newest successful check
    failures: int  # failed checks since the last success
    now: datetime
    rates: dict[str, BurnRate]
    burn: BurnRate  # over BURN_RATE_WINDOW_DAYS: the one the forecast uses
    account: AccountStatus
    alerts: list[Alert] = field(default_factory=list)
    stale_after: timedelta | None = timedelta(hours=12)
    threshold: float | None = None
    conditions: dict[str, tuple[int, str]] = field(default_factory=dict)
    level: int = Level.UNKNOWN
    message: str = ""
    key_days_left: float | None = None
    days_left: float | None = None
    binding: str = ""  # "key", "account", or "" when neither forecast is known
    binding_text: str = ""
    forecast_unknown: bool = False  # a figure the forecast needs is not known yet
    daily: dict | None = None  # spend per completed day, for the exhaustion range (Status.load_ranges)
    resets_at: datetime | None = None
    layers: list[LimitReading] = field(default_factory=list)  # the newest success's budget layers
    layer_samples: dict[tuple, list] = field(default_factory=dict)  # identity -> [(time, spend_usd)]
    limits: list[LimitStatus] = field(default_factory=list)
    money_days_left: float | None = None  # the key's cap or the account (the forecast condition's figure)
    money_binding: str = ""
    uses_free_models: bool | None = None  # None: not looked up (only when the free quota runs low)

    def __post_init__(self):
        self.forecast()
        self.money_days_left, self.money_binding = self.days_left, self.binding
        self.apply_limits()
        self.evaluate()

    # -- figures

    @property
    def name(self) -> str:
        if self.key is not None:
            return self.key.display_name
        return (self.log.label if self.log else "") or "(not set)"

    @property
    def hash_prefix(self) -> str:
        return self.key.hash[:HASH_PREFIX] if self.key is not None else ""

    @property
    def ok_log(self) -> CreditLog | None:
        return self.success

    @property
    def remaining(self) -> float | None:
        """The headline remaining: the tighter of the key's cap left and the account balance."""
        return self.success.remaining if self.success else None

    @property
    def balance_note(self) -> str:
        """Why the remaining is unknown, in words ("" when it is known): never "no limit" for a failed check."""
        if self.remaining is not None:
            return ""
        if self.success is None:
            return f"no successful check yet: {self.log.error}" if self.log is not None else "not checked yet"
        return self.success.account_note or NO_BALANCE_HINT

    @property
    def limit_remaining(self) -> float | None:
        return self.success.limit_remaining if self.success else None

    @property
    def burn_rate(self) -> float | None:
        return self.burn.rate

    @property
    def burn_note(self) -> str:
        return "" if self.burn.known else self.burn.unknown_text

    @property
    def exhaustion_date(self) -> datetime | None:
        return forecast.exhaustion_date(self.now, self.days_left)

    @property
    def reset_period(self) -> str:
        return RESET_PERIODS.get(self.success.limit_reset, "") if self.success else ""

    @property
    def used_in_limit(self) -> float | None:
        """Spent against the key's cap in its current window (all-time when it never resets)."""
        log = self.success
        if log is None or log.credit_limit is None:
            return None
        if log.limit_remaining is not None:
            return max(log.credit_limit - log.limit_remaining, 0.0)
        return log.usage

    @property
    def used_percent(self) -> float | None:
        log = self.success
        if log is None or not log.credit_limit or self.used_in_limit is None:
            return None
        return min(self.used_in_limit / log.credit_limit * 100, 100.0)

    @property
    def key_money(self) -> float | None:
        """What is left of the key's own cap (rows logged before limit_remaining was kept: the remaining)."""
        log = self.success
        if log is None:
            return None
        if log.limit_remaining is not None:
            return log.limit_remaining
        return log.remaining if log.credit_limit is not None else None

    @property
    def shares_account(self) -> bool:
        return self.success is not None and self.success.account_balance is not None and self.account.known

    def forecast(self) -> None:
        """Days left: the earliest of the key's own cap (at the key's rate) and the shared account balance
        (at the account-wide rate); a cap that resets before it runs out does not bind."""
        success = self.success
        if success is None:
            return
        cap_days = None
        if self.key_money is not None:
            cap_days = forecast.days_until_exhaustion(self.key_money, self.burn.rate)
            self.resets_at = reset_time(self.now, success.limit_reset or "")
            if cap_days is not None and self.resets_at is not None:
                until_reset = (self.resets_at - self.now).total_seconds() / forecast.SECONDS_PER_DAY
                if cap_days > until_reset:
                    cap_days = None  # the window resets first: the cap is not what runs out
        self.key_days_left = cap_days
        account_days = self.account.days_left if self.shares_account else None
        if self.shares_account and not self.account.burn.known:
            # The shared balance may run out first, at a rate not known yet: the cap's days are the most it
            # lasts; without a cap, no forecast rather than a guess.
            if cap_days is None:
                self.binding_text = f"the account's burn rate is {self.account.burn.unknown_text}"
                self.forecast_unknown = True
                return
            self.days_left, self.binding = cap_days, "key"
            self.binding_text = "the key's own limit, at most: the account's burn rate is not known yet"
            return
        if cap_days is None and account_days is None:
            if self.key_money is not None and self.resets_at is not None and self.burn.known:
                self.binding_text = f"the key's limit resets {self.resets_at:%Y-%m-%d %H:%M} UTC before it runs out"
            return
        if account_days is not None and (cap_days is None or account_days < cap_days):
            self.days_left, self.binding = account_days, "account"
            self.binding_text = "the account balance runs out first: all keys share it"
        else:
            self.days_left, self.binding = cap_days, "key"
            self.binding_text = "the key's own limit runs out first"

    @cached_property
    def exhaustion_range(self) -> tuple[datetime | None, datetime | None]:
        """(earliest, latest): the 10th-90th percentile of the exhaustion time from the spread of the key's
        daily spend (weekday-aware), for the money that binds; (None, None) while there is no forecast.

        The days are scaled so their mean is the rate the point estimate uses (the account's when the shared
        balance binds): the range is the forecast's spread around its own days left, never another forecast,
        and it always contains that point estimate.
        """
        if self.key is None or self.days_left is None or self.binding not in ("key", "account"):
            return None, None  # a budget layer binds: its window, not the money's spread
        account = self.binding == "account"
        money_left = self.account.balance if account else self.key_money
        rate = self.account.burn.rate if account else self.burn.rate
        if self.daily is None:
            self.daily = outlook.key_daily_spend(self.key, self.now, fold=False)
        mean = sum(self.daily.values()) / len(self.daily) if self.daily else 0.0
        if money_left is None or not rate or mean <= 0:
            return None, None
        daily = {day: spent * rate / mean for day, spent in self.daily.items()}
        found = forecast.exhaustion_range(money_left, daily, self.now, reporting_zone(), outlook.LOW, outlook.HIGH)
        if found is None or found[0] is None:
            return None, None
        # The range holds its own point estimate (the flat-rate days left): a weekday pattern can put the whole
        # weekday-aware spread on one side of it ("around the 14th, as early as the 15th"), so that end moves to it.
        earliest, latest = found
        point = self.exhaustion_date
        return min(earliest, point), (max(latest, point) if latest is not None else None)

    @property
    def range_text(self) -> str:
        return outlook.range_text(*self.exhaustion_range)

    def quote_range(self) -> None:
        """A forecast warning quotes the pessimistic end of the range ("may run out as early as Tue 3 Dec")."""
        level, message = self.conditions["forecast"]
        if self.range_text:
            self.conditions["forecast"] = (level, f"{message}; {self.range_text}")
            if self.message == message:
                self.message = self.conditions["forecast"][1]

    # -- budget layers

    def apply_limits(self) -> None:
        """The layers' statuses; the one that blocks first, if before the cap and the account, binds."""
        if self.success is None:
            return
        self.limits = layer_statuses(self)
        first = min(
            (layer for layer in self.limits if layer.scope != "key_limit" and layer.days_left is not None),
            key=lambda layer: layer.days_left,
            default=None,
        )
        if first is not None and (self.days_left is None or first.days_left < self.days_left):
            first.binding = True
            self.days_left, self.binding = first.days_left, first.scope
            self.binding_text = f"{first.name} {first.forecast_text}"
            self.forecast_unknown = False
        elif self.binding == "key":
            for layer in self.limits:
                layer.binding = layer.scope == "key_limit"

    @property
    def binding_limit(self) -> LimitStatus | None:
        return next((layer for layer in self.limits if layer.binding), None)

    @property
    def limits_note(self) -> str:
        """Why no layers are shown: a key seen only through /keys has none in that answer."""
        if self.success is not None and self.success.budget_layers is None:
            return LISTED_LAYERS_NOTE
        return ""

    def uses_free_models_stored(self) -> bool:
        """Whether stored activity shows the key on :free models (looked up only when the quota runs low)."""
        if self.uses_free_models is None:
            rows = Activity.objects.filter(model__endswith=":free")
            self.uses_free_models = self.key is not None and rows.filter(api_key_hash=self.key.hash).exists()
        return self.uses_free_models

    def limit_conditions(self) -> dict[str, tuple[int, str]]:
        """The worst budget layer (besides the key's own cap, which the balance and key-limit rules watch)
        and the free-model quota, as conditions of the key."""
        found = {}
        layers = [layer for layer in self.limits if layer.scope != "key_limit"]
        if layers:
            worst = max(layers, key=lambda layer: (severity(layer.level), layer.binding))
            message = worst.message
            if worst.level == Level.OK:
                message = f"Budget layers OK: {worst.name} {worst.forecast_text}"
            found["budget_layer"] = (worst.level, message)
        free = free_quota_condition(self)
        if free is not None:
            found["free_quota"] = free
        return found

    # -- level

    def evaluate(self) -> None:
        """The worst of the conditions, each with its message (the alert rules read the same ones)."""
        found: dict[str, tuple[int, str]] = {}
        if self.log is None:
            found["check"] = (Level.UNKNOWN, "Not checked yet: press Check now or wait for the next scheduled check")
        elif not self.log.ok:
            level, message = failed_check_level(self.log)
            needed = max(settings.FAILURES_BEFORE_UNKNOWN, 1)
            if self.key is None:
                pass  # no key configured, or the listing failed: the error says it all
            elif level == Level.UNKNOWN and self.failures < needed:
                message = f"Last check failed ({self.failures} of {needed} failed checks before an alert): {message}"
            elif level == Level.UNKNOWN:
                message = f"The last {self.failures} checks failed: {message}"
            found["check"] = (level, message)
        if self.success is not None:
            level, message = balance_level(self.remaining, self.threshold)
            if self.remaining is None and self.success.account_note and "management" not in self.success.account_note:
                message = f"Balance unknown: {self.success.account_note}"
            found["balance"] = (level, message)
            out = self.remaining is not None and self.remaining <= settings.OPENROUTER_MIN_BALANCE
            if self.remaining is not None and not out and not self.forecast_unknown:
                level = forecast_level(self.money_days_left)
                if self.money_days_left is None:
                    message = "Not running out at the current rate" if self.burn.known else "No forecast yet"
                else:
                    rate = self.account.burn.rate if self.money_binding == "account" else self.burn.rate
                    money_left = self.account.balance if self.money_binding == "account" else self.key_money
                    days = self.money_days_left
                    message = f"Runs out in {days:.1f} days at {money(rate)}/day ({money(money_left)} left)"
                    if self.money_binding == "account":
                        message += ": the account balance, shared by all keys"
                found["forecast"] = (level, message)
            found.update(self.limit_conditions())
            age = self.now - self.success.timestamp
        else:
            age = self.now - (self.key.first_seen if self.key else self.now)
        for alert in self.alerts:  # what only the alert rules see (a spike, a runaway, the cap, expiry)
            if alert.condition not in OWN_CONDITIONS:
                found.setdefault(f"alert:{alert.condition}:{alert.subject}", (alert.level, alert.message))
        if self.stale_after is not None and age > self.stale_after:
            since = f"since {self.success.timestamp:%Y-%m-%d %H:%M} UTC" if self.success else "ever"
            found["stale"] = (Level.UNKNOWN, f"No successful check {since} ({age.total_seconds() / 3600:.0f} h)")
        self.conditions = found
        self.level = worst_level((level for level, _ in found.values()), default=Level.UNKNOWN)
        worst = [message for level, message in found.values() if level == self.level]
        self.message = "Credits OK" if self.level == Level.OK else worst[0]

    @property
    def reason(self) -> str:
        return self.message

    @property
    def alert(self) -> dict | None:
        """The seed's alert value: None when fine."""
        if self.level == Level.OK:
            return None
        return {"level": Level(self.level).label.lower(), "message": self.message}

    def as_dict(self) -> dict:
        """Every figure, for `--json` and `/api/status/` alike."""
        log, success = self.log, self.success
        return {
            "key": self.name,
            "key_hash": self.hash_prefix or None,
            "source": self.key.source if self.key else None,
            "level": Level(self.level).label,
            "status": Level(self.level).label,
            "message": self.message,
            "ok": log.ok if log else None,
            "remaining": _round(self.remaining),
            "usage": _round(success.usage if success else None),
            "limit": _round(success.credit_limit if success else None),
            "limit_remaining": _round(self.limit_remaining),
            "limit_reset": (success.limit_reset or None) if success else None,
            "limit_resets_at": _iso(self.resets_at),
            "account_balance": _round(success.account_balance if success else None),
            "account_note": (success.account_note or None) if success else None,
            "burn_rate_per_day": {label: _round(rate.rate, 4) for label, rate in self.rates.items()},
            "burn_rate": _round(self.burn.rate, 4),
            "burn_rate_window": self.burn.window_text or self.burn.unknown_text,
            "burn_rate_source": self.burn.source or None,
            "burn_rate_window_days": settings.BURN_RATE_WINDOW_DAYS,
            "days_left": _round(self.days_left, 1),
            "key_days_left": _round(self.key_days_left, 1),
            "account_days_left": _round(self.account.days_left, 1) if self.shares_account else None,
            "binding": self.binding or None,
            "binding_text": self.binding_text or None,
            "limits": [layer.as_dict() for layer in self.limits],
            "limits_note": self.limits_note or None,
            "workspace_id": (self.key.workspace_id or None) if self.key else None,
            "free_model_requests": (
                {"limit": success.free_limit, "remaining": success.free_remaining, "used": success.free_used}
                if success is not None and success.free_limit is not None
                else None
            ),
            "exhaustion_date": _iso(self.exhaustion_date),
            "exhaustion_range": outlook.range_dict(*self.exhaustion_range) if self.days_left is not None else None,
            "conditions": {name: Level(level).label for name, (level, _) in self.conditions.items()},
            "last_check": _iso(log.timestamp if log else None),
            "last_check_ok": log.ok if log else None,
            "checked_at": _iso(log.timestamp if log else None),
            "last_success": _iso(success.timestamp if success else None),
            "consecutive_failures": self.failures,
            "error": (log.error or None) if log else None,
            "http_status": log.http_status if log else None,
            "open_alerts": [alert_dict(a) for a in self.alerts],
        }


# --- everything -------------------------------------------------------------------------------


@dataclass
class Status(LevelWords):
    """Every watched key (worst first) and the account, as of `now`."""

    now: datetime
    keys: list[KeyStatus]
    account: AccountStatus
    next_check: datetime | None
    interval_minutes: int
    unattached_alerts: list[Alert] = field(default_factory=list)
    stored: StoredKeys | None = None  # the listed keys beyond STATUS_LIVE_KEYS, not in `keys`

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> KeyStatus:
        return self.keys[index]

    @property
    def level(self) -> int:
        levels = [s.level for s in self.keys if s.key is None or not s.key.disabled]  # a disabled key serves none
        levels += [alert.level for alert in self.unattached_alerts]  # budget, model spike, missed top-up
        if self.stored is not None and self.stored.serving_worst is not None:
            levels.append(self.stored.serving_worst)
        if self.account.known:
            levels.append(self.account.level)
        return worst_level(levels, default=Level.UNKNOWN)

    @property
    def counts(self) -> dict[str, int]:
        """Keys per level, worst level first, only the levels present."""
        found: dict[str, int] = {}
        for level in sorted(Level, key=severity, reverse=True):
            n = sum(1 for s in self.keys if s.level == level)
            n += self.stored.counts.get(level, 0) if self.stored is not None else 0
            if n:
                found[Level(level).label] = n
        return found

    @property
    def open_alerts(self) -> int:
        stored = self.stored.open_alerts if self.stored is not None else 0
        return sum(len(s.alerts) for s in self.keys) + len(self.unattached_alerts) + stored

    @property
    def key_count(self) -> int:
        """Every watched key, the stored ones too."""
        return len(self.keys) + (self.stored.total if self.stored is not None else 0)

    @property
    def stale_before(self) -> datetime | None:
        """Figures stored before this are stale now (the stale rule every key's status applies)."""
        span = stale_span(self.interval_minutes)
        return self.now - span if span is not None else None

    def worst_keys(self, count: int, level: int | None = None, offset: int = 0) -> list[KeyStatus]:
        """Up to `count` keys worst first (from `offset`), optionally of one level: a slice of `keys`, or, with
        stored keys, those ranked by their level now (ApiKey.level_now) and built live."""
        if self.stored is None:
            found = [s for s in self.keys if level is None or s.level == level]
            return found[offset : offset + count]
        ranked = ApiKey.objects.watched().worst_first(self.stale_before)
        if level is not None:
            ranked = ranked.filter(level_now=level)
        return live_statuses(self.now, list(ranked[offset : offset + count]))

    @property
    def primary(self) -> KeyStatus | None:
        for status in self.keys:
            if status.key is not None and status.key.is_primary:
                return status
        return self.keys[0] if self.keys else None

    def for_key(self, key: ApiKey | None) -> KeyStatus | None:
        if key is None:
            return next((s for s in self.keys if s.key is None), None)
        index = self.__dict__.get("_by_pk")
        if index is None or index[0] != len(self.keys):  # one dict per status: thousands of lookups in a run
            index = (len(self.keys), {s.key.pk: s for s in reversed(self.keys) if s.key is not None})
            self.__dict__["_by_pk"] = index
        return index[1].get(key.pk)

    def load_ranges(self, key_statuses: list[KeyStatus] | None = None) -> None:
        """Read the daily spend every exhaustion range needs in two queries, not two per key."""
        wanted = [s for s in (self.keys if key_statuses is None else key_statuses) if s.key and s.days_left]
        daily = outlook.daily_spend_by_key([s.key for s in wanted if s.daily is None], self.now, fold=False)
        for key_status in wanted:
            if key_status.daily is None:
                key_status.daily = daily.get(key_status.key.pk, {})

    def as_dict(self, keys: list[KeyStatus] | None = None) -> dict:
        """The whole status; `keys` (a page of self.keys) in place of every key, the rest unchanged."""
        keys = self.keys if keys is None else keys
        self.load_ranges(keys)
        return {
            "generated_at": self.now.isoformat(),
            "level": self.level_name,
            "next_check": _iso(self.next_check),
            "check_interval_minutes": self.interval_minutes,
            "account": self.account.as_dict(),
            "account_balance": _round(self.account.balance),
            "account_balance_at": _iso(self.account.checked_at),
            "keys": [s.as_dict() for s in keys],
            "account_alerts": [alert_dict(a) for a in self.unattached_alerts],
        }


def stale_span(interval: int) -> timedelta | None:
    """No successful check for this long is stale (UNKNOWN): two check intervals; no schedule, no stale rule."""
    return timedelta(minutes=2 * interval) if interval > 0 else None


def schedule_figures() -> tuple[datetime | None, int]:
    """The monitoring schedule's next run and the interval it really has (the setting until migrated)."""
    row = Schedule.objects.filter(name=SCHEDULE_NAME).values_list("next_run", "minutes").first()
    if row is None:
        return None, settings.CHECK_INTERVAL_MINUTES
    return row[0], row[1] or settings.CHECK_INTERVAL_MINUTES


def annotated_keys(
    keys: list[ApiKey] | None, now: datetime, windows: dict[str, float], configured_only: bool = False
) -> list[ApiKey]:
    """Keys with the ids of their latest check and success, the failed checks since that success, and the
    time and running spend total of the last reading and of each window's first: one query of index
    look-ups whatever the number of keys (written in SQL: the ORM took longer to build it than to run it)."""
    if keys is not None and not keys:
        return []
    table = connection.ops.quote_name(CreditLog._meta.db_table)
    when = connection.ops.adapt_datetimefield_value
    newest = 'ORDER BY {0}."timestamp" DESC, {0}.id DESC LIMIT 1'
    readings = 'FROM {t} r WHERE r.key_id = k.id AND r.ok AND r."usage" IS NOT NULL AND r."timestamp" <= %s'
    last = readings + ' ORDER BY r."timestamp" DESC, r."usage" DESC, r.id DESC LIMIT 1'
    first = readings + ' AND r."timestamp" >= %s ORDER BY r."timestamp", r."usage", r.id LIMIT 1'
    success_time = f'SELECT s."timestamp" FROM {table} s WHERE s.key_id = k.id AND s.ok AND s."timestamp" <= %s '
    columns = [
        f'(SELECT l.id FROM {table} l WHERE l.key_id = k.id AND l."timestamp" <= %s {newest.format("l")})',
        f'(SELECT l.id FROM {table} l WHERE l.key_id = k.id AND l.ok AND l."timestamp" <= %s {newest.format("l")})',
        f'(SELECT COUNT(*) FROM {table} f WHERE f.key_id = k.id AND NOT f.ok AND f."timestamp" <= %s'
        f' AND f."timestamp" > COALESCE(({success_time}{newest.format("s")}), %s))',
        f'(SELECT r."timestamp" {last.format(t=table)})',
        f"(SELECT r.spend_total {last.format(t=table)})",
    ]
    params = [when(now)] * 4 + [when(EPOCH)] + [when(now)] * 2
    spans = sorted(set(windows.values()))
    for days in spans:
        columns += [
            f'(SELECT r."timestamp" {first.format(t=table)})',
            f"(SELECT r.spend_total {first.format(t=table)})",
        ]
        params += [when(now), when(now - timedelta(days=days))] * 2
    names = ["latest_id", "success_id", "failures", "t_last", "s_last"]
    names += [f"{kind}_{n}" for n in range(len(spans)) for kind in ("t", "s")]
    keys_table = connection.ops.quote_name(ApiKey._meta.db_table)
    selected = ", ".join(f"{column} AS {name}" for column, name in zip(columns, names, strict=True))
    if keys is None:  # every watched key (ApiKey.objects.watched())
        where, ids = "k.retired_at IS NULL", []
        if configured_only:  # the listed keys are read from their stored figures (StoredKeys)
            where, ids = "k.retired_at IS NULL AND k.source <> %s", [ApiKey.SOURCE_LISTED]
    else:
        ids = [key.pk for key in keys]
        where = f"k.id IN ({', '.join(['%s'] * len(ids))})"
    order = "k.is_primary DESC, k.name, k.id"  # ApiKey's ordering
    rows = list(
        ApiKey.objects.raw(
            f"SELECT k.*, {selected} FROM {keys_table} k WHERE {where} ORDER BY {order}", [*params, *ids]
        )
    )
    for row in rows:
        row.failures = row.failures or 0
        row.t_last = aware(row.t_last)
        by_days = {days: (aware(getattr(row, f"t_{n}")), getattr(row, f"s_{n}")) for n, days in enumerate(spans)}
        for label, days in windows.items():
            setattr(row, f"t_{label}", by_days[days][0])
            setattr(row, f"s_{label}", by_days[days][1])
    return rows


def key_rates(rows, now: datetime, windows: dict[str, float]) -> dict[int, dict[str, BurnRate]]:
    """Each key's rate per window from the running totals (the database sums the rows of a key whose
    totals are missing, as after a bulk load), with the span the readings cover."""
    found: dict[int, dict[str, BurnRate]] = {}
    rescan = []
    for row in rows:
        rates = {}
        for label, days in windows.items():
            first_t, first_s = getattr(row, f"t_{label}"), getattr(row, f"s_{label}")
            if first_t is not None and row.t_last is not None and (first_s is None or row.s_last is None):
                rescan.append(row)
                break
            spent = row.s_last - first_s if first_s is not None and row.s_last is not None else None
            rates[label] = rate_from_span(spent, first_t, row.t_last, days)
        else:
            found[row.pk] = rates
    if rescan:
        starts = {label: now - timedelta(days=days) for label, days in windows.items()}
        summed = CreditLog.objects.spend_windows(rescan, now, starts)
        for row in rescan:
            windows_found = summed.get(row.pk, {})
            found[row.pk] = {}
            for label, days in windows.items():
                w = windows_found.get(label)
                found[row.pk][label] = (
                    rate_from_span(w.spent, w.first, w.last, days) if w else BurnRate(None, window_days=days)
                )
    return found


def build(now: datetime, keys=None, threshold: float | None = None, pages: bool = False) -> Status:
    """The status of `keys` (every watched key by default) and of the account, worst first.

    `pages`: what the pages read. Beyond STATUS_LIVE_KEYS watched keys, only the configured keys are built
    here; the listed ones are summed from the figures stored at the last check (Status.stored) and a page
    of them is built live when shown (Status.worst_keys)."""
    window = settings.BURN_RATE_WINDOW_DAYS
    windows = {**WINDOWS, "forecast": window}
    next_check, interval = schedule_figures()
    stale_after = stale_span(interval)
    tail = stored_keys(now - stale_after if stale_after else None) if pages and keys is None else None
    open_alerts = Alert.objects.open().select_related("key").worst_first()
    if keys is not None:  # those keys' alerts and the account's, not every key's
        open_alerts = open_alerts.filter(Q(key__in=list(keys)) | Q(key__isnull=True))
    elif tail is not None:  # the listed keys' alerts are counted, not read
        listed = Q(key__source=ApiKey.SOURCE_LISTED)
        tail.open_alerts = open_alerts.filter(listed).count()
        open_alerts = open_alerts.exclude(listed)
    by_key: dict[int | None, list[Alert]] = defaultdict(list)
    for alert in open_alerts:
        by_key[alert.key_id].append(alert)
    rows = annotated_keys(None if keys is None else list(keys), now, windows, tail is not None)
    wanted = [i for r in rows for i in (r.latest_id, r.success_id) if i is not None]
    logs = CreditLog.objects.defer("raw_response").in_bulk(wanted)  # the stored answer is never read here
    rates = key_rates(rows, now, windows)
    # Stored activity where the checks span too little: the keys' and the account's, in one query (none
    # when every rate is known from the checks).
    account = account_status(now, threshold, by_key.get(None, []), None)
    missing = {r.hash: r.created_at for r in rows if not all(rate.known for rate in rates[r.pk].values())}
    if account.known and not account.burn.known:
        missing[ACCOUNT_HASH] = None
    from_activity = activity_rates(missing, now, windows)
    if ACCOUNT_HASH in from_activity:
        account = account_status(now, threshold, by_key.get(None, []), from_activity[ACCOUNT_HASH].get("forecast"))
    layers, samples = layer_readings(rows, logs, now)
    statuses = []
    for row in rows:
        stored = from_activity.get(row.hash, {})
        key_rates_found = {label: r if r.known else stored.get(label, r) for label, r in rates[row.pk].items()}
        burn = key_rates_found.pop("forecast")
        latest = logs.get(row.latest_id)
        statuses.append(
            KeyStatus(
                key=row,
                log=latest,
                success=logs.get(row.success_id),
                failures=row.failures if latest is not None and not latest.ok else 0,
                now=now,
                rates=key_rates_found,
                burn=burn,
                account=account,
                alerts=by_key.get(row.pk, []),
                stale_after=stale_after,
                threshold=threshold,
                layers=layers.get(row.success_id, []),
                layer_samples=samples.get(row.pk, {}),
            )
        )
    warned = [s for s in statuses if s.conditions.get("forecast", (Level.OK,))[0] != Level.OK]
    if warned:  # forecast warnings quote the range: their daily spend read together
        Status(now, warned, account, next_check, interval).load_ranges()
        for key_status in warned:
            key_status.quote_range()
    if keys is None:
        statuses += unattached_failures(now, statuses, account, stale_after, threshold)
    order = {row.pk: n for n, row in enumerate(rows)}
    statuses.sort(key=lambda s: (-severity(s.level), order.get(s.key.pk if s.key else None, -1)))
    return Status(now, statuses, account, next_check, interval, by_key.get(None, []), tail)


# --- many keys: the figures stored at the last check ------------------------------------------

STORED_FIELDS = ["level", "level_reason", "remaining_usd", "usage_usd", "limit_usd", "days_left", "figures_at"]


@dataclass
class StoredKeys:
    """The listed keys beyond STATUS_LIVE_KEYS, summed in SQL from their stored figures."""

    counts: dict[int, int]  # level -> keys (not computed yet: UNKNOWN)
    serving_worst: int | None  # the worst level of the keys not disabled
    total: int
    open_alerts: int = 0


def stored_keys(stale_before: datetime | None) -> StoredKeys | None:
    """None while the watched keys are few enough to build live (STATUS_LIVE_KEYS); else the listed keys'
    counts by level now (ApiKey.level_now), from two small queries."""
    watched = ApiKey.objects.watched()
    if not watched[settings.STATUS_LIVE_KEYS : settings.STATUS_LIVE_KEYS + 1].exists():
        return None
    listed = watched.filter(source=ApiKey.SOURCE_LISTED).with_level_now(stale_before).order_by()
    counts: dict[int, int] = defaultdict(int)
    serving = []
    for level, disabled, n in listed.values_list("level_now", "disabled").annotate(n=Count("id")):
        counts[level] += n
        if not disabled:
            serving.append(level)
    return StoredKeys(dict(counts), worst_level(serving) if serving else None, sum(counts.values()))


def live_statuses(now: datetime, keys: list[ApiKey]) -> list[KeyStatus]:
    """The live status of a page of keys, in the order given (the ranking by stored level)."""
    if not keys:
        return []
    built = {s.key.pk: s for s in build(now, keys=keys).keys}
    return [built[key.pk] for key in keys if key.pk in built]


def store_figures(found: Status) -> int:
    """Store each built key's level and headline figures, so the pages rank, count and search many keys in
    SQL and show what this status said (one truth), in one bulk update."""
    changed = []
    for key_status in found.keys:
        key, success = key_status.key, key_status.success
        if key is None:
            continue
        key.level, key.level_reason = key_status.level, key_status.message[:1000]
        key.remaining_usd = key_status.remaining
        key.usage_usd = success.usage if success is not None else None
        key.limit_usd = success.credit_limit if success is not None else None
        key.days_left, key.figures_at = key_status.days_left, found.now
        changed.append(key)
    update_rows(changed, STORED_FIELDS)
    return len(changed)


def layer_readings(rows, logs: dict, now: datetime) -> tuple[dict[int, list], dict[int, dict]]:
    """The budget layers of each key's newest success and each layer's recent spend readings: two queries,
    none when no success has a layer besides the key's own cap."""
    wanted = [r for r in rows if r.success_id in logs and (logs[r.success_id].budget_layers or 0) > 0]
    if not wanted:
        return {}, {}
    layers = LimitReading.objects.latest_for_logs([r.success_id for r in wanted])
    samples: dict[int, dict] = defaultdict(dict)
    found = LimitReading.objects.samples([r.pk for r in wanted], now, settings.BURN_RATE_WINDOW_DAYS)
    for (key_id, *identity), series in found.items():
        samples[key_id][tuple(identity)] = series
    return layers, samples


def unattached_failures(now, statuses, account, stale_after, threshold) -> list[KeyStatus]:
    """A failed check that belongs to no key (no key configured, the key listing failed), while it is the
    newest word: it shows as its own line until a later run succeeds."""
    log = CreditLog.objects.filter(key__isnull=True, timestamp__lte=now).order_by("-timestamp", "-id").first()
    if log is None or log.ok:
        return []
    newest = max((s.log.timestamp for s in statuses if s.log is not None), default=None)
    if newest is not None and newest > log.timestamp:
        return []
    return [
        KeyStatus(
            key=None,
            log=log,
            success=None,
            failures=1,
            now=now,
            rates={label: BurnRate(None) for label in WINDOWS},
            burn=BurnRate(None),
            account=account,
            stale_after=stale_after,
            threshold=threshold,
        )
    ]


# --- shared formatting ------------------------------------------------------------------------


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_dict(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "condition": alert.condition,
        "subject": alert.subject or None,
        "level": Level(alert.level).label,
        "message": alert.message,
        "opened_at": _iso(alert.opened_at),
        "acknowledged": alert.acknowledged_at is not None,
        "snoozed_until": _iso(alert.snoozed_until),
    }
