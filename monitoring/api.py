"""Machine endpoints: liveness probe, Prometheus metrics, and the JSON API.

Every figure is read from the database with a constant number of queries (a burn rate is the
difference of the running spend totals at the window's first and last readings, two index look-ups),
so a year of five-minute checks costs what a week does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import forecast
from .models import (
    Alert,
    ApiKey,
    CreditLog,
    HourlyFigure,
    Level,
    hourly_aggregates,
    rates_from_totals,
    window_annotations,
)

# The burn-rate windows shown on the pages, as (label, days).
WINDOWS = (("1d", 1), ("7d", 7), ("30d", 30))
HASH_PREFIX = 12  # enough to tell keys apart, useless for anything else
MAX_RANGE_DAYS = 3660
HOURLY_MAX_DAYS = 14  # a month per hour is 720 points a key: more than a chart can show
RAW_MAX_DAYS = 7  # /api/history returns every check up to this range, buckets beyond it
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "since the last success" for a key that never had one


# --- figures per key, shared by /metrics and /api/status/ -------------------------------------


@dataclass
class KeyFigures:
    """What the database says about one key now: latest check, forecast, failures."""

    key: ApiKey | None
    latest: CreditLog | None
    last_success: CreditLog | None
    consecutive_failures: int
    burn_rates: dict[str, float | None]
    burn_rate: float | None  # over BURN_RATE_WINDOW_DAYS, the one days_left uses
    days_left: float | None
    exhaustion_date: datetime | None
    level: int
    message: str
    alerts: list[Alert] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.key is not None:
            return self.key.display_name
        return "(not set)"

    @property
    def hash_prefix(self) -> str:
        return self.key.hash[:HASH_PREFIX] if self.key is not None else ""


def burn_rates(key: ApiKey | None, now: datetime, windows: dict[str, float]) -> dict[str, float | None]:
    """forecast.burn_rate_per_day for several windows: two index look-ups per window (running totals)."""
    if key is None:
        return dict.fromkeys(windows)
    return CreditLog.objects.burn_rates([key], now, windows)[key.pk]


def watched(now: datetime) -> list[ApiKey | None]:
    """Keys that are not disabled; the key-less row only when a check failed before any key existed."""
    keys: list[ApiKey | None] = list(ApiKey.objects.filter(disabled=False))
    if not keys and CreditLog.objects.filter(key__isnull=True).exists():
        keys.append(None)
    return keys


def figures_for(key: ApiKey | None, now: datetime, alerts: list[Alert]) -> KeyFigures:
    """Four queries: latest check, latest success, failures since it, burn rates."""

    latest = CreditLog.objects.latest_for(key)
    last_success = CreditLog.objects.successful().for_key(key).order_by("-timestamp", "-id").first()
    failures = CreditLog.objects.failed().for_key(key)
    if last_success is not None:
        failures = failures.filter(timestamp__gt=last_success.timestamp)
    window = settings.BURN_RATE_WINDOW_DAYS
    rates = burn_rates(key, now, {**dict(WINDOWS), "configured": window})
    return build_figures(key, latest, last_success, failures.count(), rates, now, alerts)


def build_figures(
    key: ApiKey | None,
    latest: CreditLog | None,
    success: CreditLog | None,
    failures: int,
    rates: dict[str, float | None],
    now: datetime,
    alerts: list[Alert],
) -> KeyFigures:
    """One key's figures from its latest check, latest success and burn rates (no queries)."""
    from .monitor import threshold_level

    rates = dict(rates)
    configured = rates.pop("configured")
    remaining = success.remaining if success else None
    days_left = forecast.days_until_exhaustion(remaining, configured)
    if latest is None:
        level, message = Level.UNKNOWN, "No check yet"
    elif not latest.ok:
        level, message = Level.UNKNOWN, latest.error
    else:
        level, message = threshold_level(remaining)
    return KeyFigures(
        key=key,
        latest=latest,
        last_success=success,
        consecutive_failures=failures,
        burn_rates=rates,
        burn_rate=configured,
        days_left=days_left,
        exhaustion_date=forecast.exhaustion_date(now, days_left),
        level=level,
        message=message,
        alerts=alerts,
    )


def annotated_keys(now: datetime, windows: dict[str, float]):
    """Watched keys with, per key, the ids of its latest check and success, the failed checks since that
    success, and the running spend totals at each window's first reading and at the last one: one query
    whatever the number of keys, each part an index look-up."""
    logs = CreditLog.objects.filter(key=OuterRef("pk"))
    newest = ("-timestamp", "-id")
    success = logs.successful().order_by(*newest)
    success_at = CreditLog.objects.filter(key=OuterRef(OuterRef("pk")), ok=True).order_by(*newest)
    failed_since = (
        CreditLog.objects.failed()
        .filter(key=OuterRef("pk"))
        .filter(timestamp__gt=Coalesce(Subquery(success_at.values("timestamp")[:1]), Value(EPOCH)))
        .order_by()
        .values("key")
        .annotate(n=Count("id"))
        .values("n")
    )
    return ApiKey.objects.filter(disabled=False).annotate(
        latest_id=Subquery(logs.order_by(*newest).values("id")[:1]),
        success_id=Subquery(success.values("id")[:1]),
        failures=Coalesce(Subquery(failed_since), 0),
        **window_annotations(now, windows),
    )


def all_figures(now: datetime) -> tuple[list[KeyFigures], list[Alert]]:
    """Figures for every watched key, and the open alerts that belong to no key (budget, top-up).

    Three queries whatever the number of keys: open alerts, the annotated keys, their log rows (a fourth
    sums the windows of keys whose rows were bulk-loaded without running totals).
    """

    open_alerts = list(Alert.objects.open().order_by("id"))
    by_key: dict[int | None, list[Alert]] = {}
    for alert in open_alerts:
        by_key.setdefault(alert.key_id, []).append(alert)
    window = settings.BURN_RATE_WINDOW_DAYS
    windows = {**dict(WINDOWS), "configured": window}
    keys = list(annotated_keys(now, windows))
    if not keys:
        if CreditLog.objects.filter(key__isnull=True).exists():
            return [figures_for(None, now, by_key.get(None, []))], []
        return [], by_key.get(None, [])
    logs = CreditLog.objects.in_bulk([i for k in keys for i in (k.latest_id, k.success_id) if i is not None])
    every_rate, rescan = {}, []
    for key in keys:
        every_rate[key.pk], missing = rates_from_totals(key, windows)
        if missing:
            rescan.append(key)
    if rescan:  # rows bulk-loaded without running totals: the database sums those keys' windows
        starts = {label: now - timedelta(days=days) for label, days in windows.items()}
        summed = CreditLog.objects.spend_windows(rescan, now, starts)
        for key in rescan:
            found = summed.get(key.pk, {})
            every_rate[key.pk] = {label: found[label].rate if found else None for label in windows}
    figures = []
    for key in keys:
        latest, success = logs.get(key.latest_id), logs.get(key.success_id)
        failures = key.failures if latest and not latest.ok else 0
        figures.append(build_figures(key, latest, success, failures, every_rate[key.pk], now, by_key.get(key.pk, [])))
    return figures, by_key.get(None, [])


def latest_account_balance() -> CreditLog | None:
    return (
        CreditLog.objects.successful()
        .filter(account_balance__isnull=False)
        .only("timestamp", "account_balance", "account_credits", "account_usage")
        .order_by("-timestamp", "-id")
        .first()
    )


# --- authentication ---------------------------------------------------------------------------


def bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_matches(given: str | None, expected: str) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="creditmon"'
    return response


def api_auth_error(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read the API: a logged-in session or `Bearer API_TOKEN`."""
    given = bearer_token(request)
    if given is not None:
        if token_matches(given, settings.API_TOKEN):
            return None
        return _unauthorized("invalid token")
    if request.user.is_authenticated:
        return None
    return _unauthorized("log in or send Authorization: Bearer <API_TOKEN>")


# --- ranges -----------------------------------------------------------------------------------


def requested_range(params, now: datetime, default_days: int = 30) -> tuple[datetime, datetime]:
    """`?days=N` (ending now) or `?start=YYYY-MM-DD&end=YYYY-MM-DD` (whole days in the reporting zone).

    Raises ValueError with a message fit to show the caller.
    """
    start_text, end_text = params.get("start"), params.get("end")
    if start_text or end_text:
        try:
            first = date.fromisoformat(start_text) if start_text else None
            last = date.fromisoformat(end_text) if end_text else timezone.localdate(now, _zone())
        except ValueError:
            raise ValueError("start and end must be dates written YYYY-MM-DD") from None
        if first is None:
            raise ValueError("start is required with end (YYYY-MM-DD)")
        if last < first:
            raise ValueError("end is before start")
        if (last - first).days > MAX_RANGE_DAYS:
            raise ValueError(f"the range is limited to {MAX_RANGE_DAYS} days")
        zone = _zone()
        start = datetime.combine(first, time.min, tzinfo=zone)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
        return start, min(end, now)
    days_text = params.get("days") or str(default_days)
    try:
        days = float(days_text)
    except ValueError:
        raise ValueError("days must be a number, e.g. ?days=30") from None
    if not 0 < days <= MAX_RANGE_DAYS:
        raise ValueError(f"days must be between 0 and {MAX_RANGE_DAYS}")
    return now - timedelta(days=days), now


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.CREDITMON_TIME_ZONE)


# --- views ------------------------------------------------------------------------------------


@login_not_required
@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the process answers and the database does. Nothing else."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


@login_not_required
@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, built from the database on each scrape (no process-global state)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    expected = settings.METRICS_TOKEN
    if not expected:
        return HttpResponse("set METRICS_TOKEN to enable /metrics\n", status=403, content_type="text/plain")
    if not token_matches(bearer_token(request), expected):
        response = HttpResponse("send Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="creditmon"'
        return response
    now = timezone.now()
    figures, account_alerts = all_figures(now)
    registry = CollectorRegistry()
    registry.register(CreditmonCollector(figures, account_alerts, latest_account_balance()))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class CreditmonCollector:
    """Yields gauges from figures already read; prometheus_client calls collect() once per scrape."""

    def __init__(self, figures: list[KeyFigures], account_alerts: list[Alert], account: CreditLog | None):
        self.figures = figures
        self.account_alerts = account_alerts
        self.account = account

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        labels = ["key", "key_hash"]

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        remaining = gauge("creditmon_remaining_usd", "Headline remaining credit of the key (USD), last success")
        usage = gauge("creditmon_key_usage_usd", "All-time spend of the key (USD), last success")
        limit = gauge("creditmon_key_limit_usd", "The key's own credit limit (USD); absent when uncapped")
        burn = gauge("creditmon_burn_rate_usd_per_day", "Average spend per day over the window", ("window",))
        days_left = gauge("creditmon_days_left", "Days until the remaining credit is spent at the configured burn rate")
        last_success = gauge("creditmon_last_success_timestamp_seconds", "Unix time of the last successful check")
        last_check = gauge("creditmon_last_check_timestamp_seconds", "Unix time of the last check, failed or not")
        failures = gauge("creditmon_consecutive_failures", "Failed checks since the last successful one")
        level = gauge("creditmon_check_level", "Verdict of the last check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
        duration = gauge("creditmon_check_duration_seconds", "How long the last check's API call took")
        alert = gauge(
            "creditmon_alert_level", "Open alerts: 1 WARNING, 2 CRITICAL, 3 UNKNOWN", ("condition", "subject")
        )
        for fig in self.figures:
            values = [fig.name, fig.hash_prefix]
            if fig.last_success is not None:
                success = fig.last_success
                if success.remaining is not None:
                    remaining.add_metric(values, success.remaining)
                if success.usage is not None:
                    usage.add_metric(values, success.usage)
                if success.credit_limit is not None:
                    limit.add_metric(values, success.credit_limit)
                last_success.add_metric(values, success.timestamp.timestamp())
            for window, rate in fig.burn_rates.items():
                if rate is not None:
                    burn.add_metric([*values, window], rate)
            if fig.days_left is not None:
                days_left.add_metric(values, fig.days_left)
            if fig.latest is not None:
                last_check.add_metric(values, fig.latest.timestamp.timestamp())
                if fig.latest.duration_ms is not None:
                    duration.add_metric(values, fig.latest.duration_ms / 1000)
            failures.add_metric(values, fig.consecutive_failures)
            level.add_metric(values, fig.level)
            for open_alert in fig.alerts:
                alert.add_metric([*values, open_alert.condition, open_alert.subject], open_alert.level)
        for open_alert in self.account_alerts:
            alert.add_metric(["", "", open_alert.condition, open_alert.subject], open_alert.level)
        yield from (remaining, usage, limit, burn, days_left, last_success, last_check, failures, level, duration)
        yield alert
        if self.account is not None:
            balance = GaugeMetricFamily("creditmon_account_balance_usd", "Account credits minus usage (/credits)")
            balance.add_metric([], self.account.account_balance)
            yield balance


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _alert_dict(alert: Alert) -> dict:
    return {
        "condition": alert.condition,
        "subject": alert.subject or None,
        "level": Level(alert.level).label,
        "message": alert.message,
        "opened_at": _iso(alert.opened_at),
        "acknowledged": alert.acknowledged_at is not None,
        "snoozed_until": _iso(alert.snoozed_until),
    }


def _status_dict(fig: KeyFigures) -> dict:
    success, latest = fig.last_success, fig.latest
    return {
        "key": fig.name,
        "key_hash": fig.hash_prefix or None,
        "level": Level(fig.level).label,
        "message": fig.message,
        "remaining": _round(success.remaining if success else None),
        "usage": _round(success.usage if success else None),
        "limit": _round(success.credit_limit if success else None),
        "limit_remaining": _round(success.limit_remaining if success else None),
        "account_balance": _round(success.account_balance if success else None),
        "burn_rate_per_day": {window: _round(rate) for window, rate in fig.burn_rates.items()},
        "burn_rate_window_days": settings.BURN_RATE_WINDOW_DAYS,
        "days_left": _round(fig.days_left, 1),
        "exhaustion_date": _iso(fig.exhaustion_date),
        "last_check": _iso(latest.timestamp if latest else None),
        "last_check_ok": latest.ok if latest else None,
        "last_success": _iso(success.timestamp if success else None),
        "consecutive_failures": fig.consecutive_failures,
        "open_alerts": [_alert_dict(alert) for alert in fig.alerts],
    }


@login_not_required
@require_GET
@never_cache
def status(request: HttpRequest) -> JsonResponse:
    """Current status per key, with the account balance, burn rates and open alerts."""
    from .monitor import next_check_time

    if (refused := api_auth_error(request)) is not None:
        return refused
    now = timezone.now()
    figures, account_alerts = all_figures(now)
    account = latest_account_balance()
    worst = max((f.level for f in figures), key=lambda lv: _severity(lv), default=Level.UNKNOWN)
    return JsonResponse(
        {
            "generated_at": now.isoformat(),
            "level": Level(worst).label,
            "account_balance": _round(account.account_balance if account else None),
            "account_balance_at": _iso(account.timestamp if account else None),
            "next_check": _iso(next_check_time()),
            "keys": [_status_dict(fig) for fig in figures],
            "account_alerts": [_alert_dict(alert) for alert in account_alerts],
        }
    )


def _severity(level: int) -> int:
    from .models import SEVERITY

    return SEVERITY[Level(level)]


def resolution_for(start: datetime, end: datetime, asked: str | None) -> str:
    """raw up to RAW_MAX_DAYS, hourly buckets up to 14 days, daily beyond; `?resolution=` may coarsen."""
    days = (end - start).total_seconds() / forecast.SECONDS_PER_DAY
    natural = "raw" if days <= RAW_MAX_DAYS else "hour" if days <= HOURLY_MAX_DAYS else "day"
    if not asked:
        return natural
    if asked not in ("raw", "hour", "day"):
        raise ValueError("resolution must be raw, hour or day")
    if asked == "raw" and days > RAW_MAX_DAYS:
        raise ValueError(f"raw rows are served for ranges up to {RAW_MAX_DAYS} days; use hour or day")
    return asked


HOURLY_COLUMNS = ("key_id", "hour", "checks", "failures", "usage_max", "remaining_min", "limit_max", "balance_min",
                  "last_at")  # fmt: skip


def history_points(start: datetime, end: datetime, resolution: str, keys: list[ApiKey]) -> dict[int, list[dict]]:
    """Points per key id: every check (raw), or one aggregate row per key per UTC hour or day."""
    rows = CreditLog.objects.filter(timestamp__gte=start, timestamp__lte=end, key__in=keys)
    points: dict[int, list[dict]] = {key.pk: [] for key in keys}
    if resolution == "raw":
        fields = ("key_id", "timestamp", "ok", "usage", "remaining", "credit_limit", "account_balance", "error")
        for key_id, when, ok, used, remaining, limit, balance, error in rows.order_by("timestamp", "id").values_list(
            *fields
        ):
            points[key_id].append(
                {
                    "t": when.isoformat(),
                    "ok": ok,
                    "usage": used,
                    "remaining": remaining,
                    "limit": limit,
                    "account_balance": balance,
                    "error": error or None,
                }
            )
        return points
    # Whole UTC hours come from the hourly rows (a month is 720 per key, not 8,640 checks); the partial
    # hours at either end of the range from the log itself, so every figure is what the raw rows give.
    HourlyFigure.objects.refresh()
    hour = timedelta(hours=1)
    first_full = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first_full += hour if first_full < start else timedelta(0)
    last_end = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if first_full >= last_end:  # less than an hour apart: the log alone
        head, tail = [rows], []
    else:  # each within one hour: at most one point per key before, one after the stored hours
        # Each with its own tight bounds: given the range's too, SQLite scans the whole range per key.
        logs = CreditLog.objects.filter(key__in=keys)
        head = [logs.filter(timestamp__gte=start, timestamp__lt=first_full)]
        tail = [logs.filter(timestamp__gte=last_end, timestamp__lte=end)]
    stored = []
    if first_full < last_end:
        text = ISO_TEXT.get(connection.vendor, "{}")
        where = f" WHERE key_id IN ({', '.join(['%s'] * len(keys))}) AND hour >= %s AND hour < %s"
        params = [*(k.pk for k in keys), *(connection.ops.adapt_datetimefield_value(t) for t in (first_full, last_end))]
        if resolution == "hour":
            # 720 rows a key a month, read as plain tuples: SQLite's stored text is already the ISO time.
            columns = ", ".join(text.format(c) if c in ("hour", "last_at") else c for c in HOURLY_COLUMNS)
            sql = f"SELECT {columns} FROM {HourlyFigure._meta.db_table}{where} ORDER BY key_id, hour"
        else:
            # Daily points: the database folds the hours of each UTC day, so Python sees 30 rows a key a month.
            day = UTC_DAY.get(connection.vendor, "date(hour)")
            sql = (
                f"SELECT key_id, {day} AS d, SUM(checks), SUM(failures), MAX(usage_max), MIN(remaining_min),"
                f" MAX(limit_max), MIN(balance_min), {text.format('MAX(last_at)')}"
                f" FROM {HourlyFigure._meta.db_table}{where} GROUP BY key_id, d ORDER BY key_id, d"
            )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        if resolution == "hour":
            stored = [(row[0], _utc_iso(row[1]), *row[2:8], _utc_iso(row[8])) for row in found]
        else:
            stored = [(row[0], f"{row[1]}T00:00:00+00:00", *row[2:8], _utc_iso(row[8])) for row in found]
    before = sorted(_part(p) for edge in head for p in hourly_aggregates(edge))
    after = [_part(p) for edge in tail for p in hourly_aggregates(edge)]
    if resolution == "hour":  # per key: its partial first hour, the stored hours in order, its partial last
        for key_id, hour_iso, *figures in before + stored + after:
            points[key_id].append(_point(hour_iso, *figures))
        return points
    merged: dict[tuple, list] = {}
    for key_id, hour_iso, checks, failures, used, remaining, limit, balance, last in before + stored + after:
        bucket = hour_iso[:10] + "T00:00:00+00:00"
        found = merged.get((key_id, bucket))
        if found is None:
            merged[(key_id, bucket)] = [checks, failures, used, remaining, limit, balance, last]
            continue
        found[0] += checks
        found[1] += failures
        for n, value, pick in ((2, used, max), (3, remaining, min), (4, limit, max), (5, balance, min)):
            if value is not None:
                found[n] = value if found[n] is None else pick(found[n], value)
        found[6] = max(found[6], last)  # ISO texts of one format and zone sort as times
    for (key_id, bucket), figures in sorted(merged.items()):
        points[key_id].append(_point(bucket, *figures))
    return points


# The database writes a UTC time as datetime.isoformat() would (SQLite stores it as text already;
# PostgreSQL's own text beats psycopg's pure-Python timestamp parser 7,200 times over).
ISO_TEXT = {
    "sqlite": "CAST({0} AS TEXT)",
    "postgresql": "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {0})"
    " = {0} THEN '' ELSE to_char({0} AT TIME ZONE 'UTC', '.US') END || '+00:00'",
}


# The UTC day of a stored hour, as YYYY-MM-DD text.
UTC_DAY = {
    "sqlite": "substr(hour, 1, 10)",
    "postgresql": "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def _part(p: dict) -> tuple:
    return (p["key_id"], _utc_iso(p["hour"]), p["checks"], p["failures"], p["usage_max"], p["remaining_min"],
            p["limit_max"], p["balance_min"], _utc_iso(p["last_at"]))  # fmt: skip


def _point(bucket: str, checks, failures, used, remaining, limit, balance, last) -> dict:
    return {
        "t": bucket,
        "checks": checks,
        "failures": failures,
        "usage": used,
        "remaining": remaining,
        "limit": limit,
        "account_balance": balance,
        "last_check": last,
    }


def _utc_iso(value) -> str:
    """datetime.isoformat() of a UTC time, also from SQLite's stored text ("YYYY-MM-DD HH:MM:SS[.ffffff]")."""
    if isinstance(value, str):
        return value if value.endswith("+00:00") else value.replace(" ", "T") + "+00:00"
    return value.astimezone(UTC).isoformat()


@login_not_required
@require_GET
@never_cache
def history(request: HttpRequest) -> JsonResponse:
    """Logged history per key over `?days=N` or `?start=&end=`; bucketed by the database beyond a week."""
    if (refused := api_auth_error(request)) is not None:
        return refused
    now = timezone.now()
    try:
        start, end = requested_range(request.GET, now)
        resolution = resolution_for(start, end, request.GET.get("resolution"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    keys = list(ApiKey.objects.all())
    if wanted := request.GET.get("key"):
        keys = [k for k in keys if k.hash.startswith(wanted.lower()) or k.display_name == wanted]
    points = history_points(start, end, resolution, keys)
    return JsonResponse(
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": resolution,
            "bucket_note": None
            if resolution == "raw"
            else "one row per key per UTC bucket: usage is the highest reading (it is cumulative), "
            "remaining and account_balance the lowest",
            "keys": [
                {"key": key.display_name, "key_hash": key.hash[:HASH_PREFIX], "points": points[key.pk]}
                for key in keys
                if points[key.pk]
            ],
        }
    )
