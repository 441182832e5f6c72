"""Machine endpoints: liveness probe, Prometheus metrics, and the JSON API.

Every figure is read from the database with a constant number of queries per key (the burn rates
are summed by the database, never by loading the rows), so a year of five-minute checks costs
what a week does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.db.models import Case, Count, F, Max, Min, OuterRef, Q, Subquery, Sum, When, Window
from django.db.models.functions import Lag, Substr, Trunc
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import forecast
from .models import Alert, ApiKey, CreditLog, Level

# The burn-rate windows shown on the pages, as (label, days).
WINDOWS = (("1d", 1), ("7d", 7), ("30d", 30))
HASH_PREFIX = 12  # enough to tell keys apart, useless for anything else
MAX_RANGE_DAYS = 3660
RAW_MAX_DAYS = 7  # /api/history returns every check up to this range, buckets beyond it


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
    """forecast.burn_rate_per_day for several windows, from index look-ups only (no scan of the window).

    A key's `usage` is its all-time spend and only rises, so the spend over a window is the last
    reading minus the first one inside it. If the last is below the first, the counter was reset:
    then the exact definition (spend between consecutive readings, a drop read as a reset) is
    summed by the database over the window's rows.
    """
    readings = CreditLog.objects.successful().for_key(key).filter(usage__isnull=False, timestamp__lte=now)
    last = readings.order_by("-timestamp", "-id").values("timestamp", "usage")[:1]
    firsts = {}
    for label, days in windows.items():
        first = readings.filter(timestamp__gte=now - timedelta(days=days)).order_by("timestamp", "id")
        firsts[f"t_{label}"] = Subquery(first.values("timestamp")[:1])
        firsts[f"u_{label}"] = Subquery(first.values("usage")[:1])
    found = (
        ApiKey.objects.annotate(t_last=Subquery(last.values("timestamp")), u_last=Subquery(last.values("usage")))
        .annotate(**firsts)
        .values("t_last", "u_last", *firsts)[:1]
    )
    row = next(iter(found), None)
    rates: dict[str, float | None] = {}
    for label, days in windows.items():
        if row is None or row[f"t_{label}"] is None or row["t_last"] is None:
            rates[label] = None
            continue
        span = (row["t_last"] - row[f"t_{label}"]).total_seconds() / forecast.SECONDS_PER_DAY
        if span <= 0:
            rates[label] = None
        elif row["u_last"] >= row[f"u_{label}"]:
            rates[label] = (row["u_last"] - row[f"u_{label}"]) / span
        else:
            rates[label] = exact_burn_rate(readings, now, days)
    return rates


def exact_burn_rate(readings, now: datetime, days: float) -> float | None:
    """The forecast definition summed by the database (a window function), for windows with a reset."""
    start = now - timedelta(days=days)
    order = [F("timestamp").asc(), F("usage").asc(), F("id").asc()]  # forecast sorts by (time, usage)
    rows = readings.filter(timestamp__gte=start).annotate(prev_usage=Window(Lag("usage"), order_by=order))
    step = Case(When(usage__gte=F("prev_usage"), then=F("usage") - F("prev_usage")), default=F("usage"))
    found = rows.aggregate(
        spent=Sum(step, filter=Q(prev_usage__isnull=False)),
        first=Min("timestamp"),
        last=Max("timestamp"),
        n=Count("id"),
    )
    if found["n"] < 2:
        return None
    span = (found["last"] - found["first"]).total_seconds() / forecast.SECONDS_PER_DAY
    return (found["spent"] or 0.0) / span if span > 0 else None


def watched(now: datetime) -> list[ApiKey | None]:
    """Keys that are not disabled; the key-less row only when a check failed before any key existed."""
    keys: list[ApiKey | None] = list(ApiKey.objects.filter(disabled=False))
    if not keys and CreditLog.objects.filter(key__isnull=True).exists():
        keys.append(None)
    return keys


def figures_for(key: ApiKey | None, now: datetime, alerts: list[Alert]) -> KeyFigures:
    """Four queries: latest check, latest success, failures since it, burn rates."""
    from .monitor import threshold_level

    latest = CreditLog.objects.latest_for(key)
    last_success = CreditLog.objects.successful().for_key(key).order_by("-timestamp", "-id").first()
    failures = CreditLog.objects.failed().for_key(key)
    if last_success is not None:
        failures = failures.filter(timestamp__gt=last_success.timestamp)
    window = settings.BURN_RATE_WINDOW_DAYS
    rates = burn_rates(key, now, {**dict(WINDOWS), "configured": window})
    configured = rates.pop("configured")
    remaining = last_success.remaining if last_success else None
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
        last_success=last_success,
        consecutive_failures=failures.count(),
        burn_rates=rates,
        burn_rate=configured,
        days_left=days_left,
        exhaustion_date=forecast.exhaustion_date(now, days_left),
        level=level,
        message=message,
        alerts=alerts,
    )


def annotated_keys(now: datetime, windows: dict[str, float]):
    """Watched keys with, per key, the ids of its latest check and success, and the first reading of
    each window and the last one: one query whatever the number of keys, each part an index look-up."""
    logs = CreditLog.objects.filter(key=OuterRef("pk"))
    newest = ("-timestamp", "-id")
    readings = logs.successful().filter(usage__isnull=False, timestamp__lte=now)
    annotations = {
        "latest_id": Subquery(logs.order_by(*newest).values("id")[:1]),
        "success_id": Subquery(logs.successful().order_by(*newest).values("id")[:1]),
        "t_last": Subquery(readings.order_by(*newest).values("timestamp")[:1]),
        "u_last": Subquery(readings.order_by(*newest).values("usage")[:1]),
    }
    for label, days in windows.items():
        first = readings.filter(timestamp__gte=now - timedelta(days=days)).order_by("timestamp", "id")
        annotations[f"t_{label}"] = Subquery(first.values("timestamp")[:1])
        annotations[f"u_{label}"] = Subquery(first.values("usage")[:1])
    return ApiKey.objects.filter(disabled=False).annotate(**annotations)


def failures_since(key: ApiKey, success: CreditLog | None) -> int:
    """Failed checks after the last success: asked only for a key whose latest check failed."""
    failed = CreditLog.objects.failed().for_key(key)
    return (failed.filter(timestamp__gt=success.timestamp) if success else failed).count()


def rates_from(row, now: datetime, windows: dict[str, float], key: ApiKey) -> dict[str, float | None]:
    rates: dict[str, float | None] = {}
    for label, days in windows.items():
        first_time, first_usage = getattr(row, f"t_{label}"), getattr(row, f"u_{label}")
        if first_time is None or row.t_last is None:
            rates[label] = None
            continue
        span = (row.t_last - first_time).total_seconds() / forecast.SECONDS_PER_DAY
        if span <= 0:
            rates[label] = None
        elif row.u_last >= first_usage:
            rates[label] = (row.u_last - first_usage) / span
        else:  # the counter was reset inside the window
            readings = CreditLog.objects.successful().for_key(key).filter(usage__isnull=False, timestamp__lte=now)
            rates[label] = exact_burn_rate(readings, now, days)
    return rates


def all_figures(now: datetime) -> tuple[list[KeyFigures], list[Alert]]:
    """Figures for every watched key, and the open alerts that belong to no key (budget, top-up).

    Three queries whatever the number of keys: open alerts, the annotated keys, their log rows.
    """
    from .monitor import threshold_level

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
    figures = []
    for key in keys:
        latest, success = logs.get(key.latest_id), logs.get(key.success_id)
        rates = rates_from(key, now, windows, key)
        configured = rates.pop("configured")
        remaining = success.remaining if success else None
        days_left = forecast.days_until_exhaustion(remaining, configured)
        if latest is None:
            level, message = Level.UNKNOWN, "No check yet"
        elif not latest.ok:
            level, message = Level.UNKNOWN, latest.error
        else:
            level, message = threshold_level(remaining)
        figures.append(
            KeyFigures(
                key=key,
                latest=latest,
                last_success=success,
                consecutive_failures=failures_since(key, success) if latest and not latest.ok else 0,
                burn_rates=rates,
                burn_rate=configured,
                days_left=days_left,
                exhaustion_date=forecast.exhaustion_date(now, days_left),
                level=level,
                message=message,
                alerts=by_key.get(key.pk, []),
            )
        )
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
    """raw up to RAW_MAX_DAYS, hourly buckets up to 60 days, daily beyond; `?resolution=` may coarsen."""
    days = (end - start).total_seconds() / forecast.SECONDS_PER_DAY
    natural = "raw" if days <= RAW_MAX_DAYS else "hour" if days <= 60 else "day"
    if not asked:
        return natural
    if asked not in ("raw", "hour", "day"):
        raise ValueError("resolution must be raw, hour or day")
    if asked == "raw" and days > RAW_MAX_DAYS:
        raise ValueError(f"raw rows are served for ranges up to {RAW_MAX_DAYS} days; use hour or day")
    return asked


def _bucket(resolution: str):
    """A UTC hour or day bucket computed by the database itself (SQLite's own substr, not a Python UDF)."""
    if connection.vendor == "sqlite":
        # Django stores SQLite datetimes as UTC text "YYYY-MM-DD HH:MM:SS...": the prefix is the bucket.
        return Substr("timestamp", 1, 13 if resolution == "hour" else 10)
    return Trunc("timestamp", resolution, tzinfo=UTC)


def _bucket_time(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = value + (":00:00" if len(value) == 13 else " 00:00:00")
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


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
    buckets = (
        rows.annotate(bucket=_bucket(resolution))
        .values("key_id", "bucket")
        .annotate(
            checks=Count("id"),
            failures=Count("id", filter=Q(ok=False)),
            usage=Max("usage"),
            remaining=Min("remaining"),
            limit=Max("credit_limit"),
            account_balance=Min("account_balance"),
            last=Max("timestamp"),
        )
        .order_by("key_id", "bucket")
    )
    for row in buckets:
        points[row["key_id"]].append(
            {
                "t": _bucket_time(row["bucket"]).isoformat(),
                "checks": row["checks"],
                "failures": row["failures"],
                "usage": row["usage"],
                "remaining": row["remaining"],
                "limit": row["limit"],
                "account_balance": row["account_balance"],
                "last_check": _iso(row["last"]),
            }
        )
    return points


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
