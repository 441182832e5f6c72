"""Machine endpoints: liveness probe, Prometheus metrics, and the JSON API.

Every figure is read from the database with a constant number of queries (a burn rate is the
difference of the running spend totals at the window's first and last readings, two index look-ups),
so a year of five-minute checks costs what a week does.
"""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from . import advisor, catalogue, forecast, roles, status
from .models import ApiKey, CreditLog, HourlyFigure, Level, UtcDailyFigure, hourly_aggregates

HASH_PREFIX = status.HASH_PREFIX
MAX_RANGE_DAYS = 3660
# Dates a range may name: beyond these a day's arithmetic overflows (9999-12-31 + 1 day) and nothing was logged.
EARLIEST_DATE, LATEST_DATE = date(2000, 1, 1), date(2999, 12, 31)
HOURLY_MAX_DAYS = 14  # a month per hour is 720 points a key: more than a chart can show
RAW_MAX_DAYS = 7  # /api/history returns every check up to this range, buckets beyond it


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
    """None when the request may read the API: a logged-in session, `Bearer API_TOKEN` or `API_OPERATOR_TOKEN`."""
    given = bearer_token(request)
    if given is not None:
        if roles.token_role(given) is not None:
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
        if not EARLIEST_DATE <= first <= LATEST_DATE or not EARLIEST_DATE <= last <= LATEST_DATE:
            raise ValueError(f"start and end must be dates from {EARLIEST_DATE} to {LATEST_DATE}")
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
        raise ValueError(f"days must be more than 0 and at most {MAX_RANGE_DAYS}")
    return now - timedelta(days=days), now


def _zone():
    return status.reporting_zone()


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
    expected = settings.METRICS_TOKEN
    if not expected:
        return HttpResponse("set METRICS_TOKEN to enable /metrics\n", status=403, content_type="text/plain")
    if not token_matches(bearer_token(request), expected):
        response = HttpResponse("send Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="creditmon"'
        return response
    registry = CollectorRegistry()
    now = timezone.now()
    registry.register(CreditmonCollector(status.build(now, pages=True), catalogue.age_seconds(now)))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class CreditmonCollector:
    """Yields gauges from the status already built; prometheus_client calls collect() once per scrape."""

    def __init__(self, found: status.Status, catalogue_age: float | None = None):
        self.found = found
        self.catalogue_age = catalogue_age

    def layer_metrics(self, labels: list[str], shown: list):
        """One series per budget layer (remaining, limit, seconds until it blocks), and what binds each key."""
        extra = [*labels, "scope", "layer"]
        remaining = GaugeMetricFamily("creditmon_budget_remaining_usd", "What is left of a budget layer", labels=extra)
        limit = GaugeMetricFamily("creditmon_budget_limit_usd", "A budget layer's limit in its window", labels=extra)
        blocks = GaugeMetricFamily(
            "creditmon_budget_seconds_until_block", "Seconds until the layer refuses requests (0: now)", labels=extra
        )
        level = GaugeMetricFamily("creditmon_budget_level", "A budget layer's level: 0 OK .. 3 UNKNOWN", labels=extra)
        binding = GaugeMetricFamily(
            "creditmon_binding_info", "1 for what stops the key first: key, account or a layer's scope",
            labels=[*labels, "binding"],
        )  # fmt: skip
        for key_status in shown:  # the keys that get per-key series (METRICS_MAX_KEYS)
            values = [key_status.name, key_status.hash_prefix]
            if key_status.binding:
                binding.add_metric([*values, key_status.binding], 1)
            for layer in key_status.limits:
                names = [*values, layer.scope, layer.guardrail_id or layer.budget_id or layer.scope]
                remaining.add_metric(names, layer.remaining_usd)
                limit.add_metric(names, layer.limit_usd)
                level.add_metric(names, layer.level)
                if layer.blocks_at is not None:
                    blocks.add_metric(names, max((layer.blocks_at - self.found.now).total_seconds(), 0.0))
        yield from (remaining, limit, blocks, level, binding)

    def collect(self):
        labels = ["key", "key_hash"]

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        remaining = gauge("creditmon_remaining_usd", "Headline remaining credit of the key (USD), last success")
        usage = gauge("creditmon_key_usage_usd", "All-time spend of the key (USD), last success")
        limit = gauge("creditmon_key_limit_usd", "The key's own credit limit (USD); absent when uncapped")
        burn = gauge("creditmon_burn_rate_usd_per_day", "Average spend per day over the window", ("window",))
        days_left = gauge("creditmon_days_left", "Days until the money that binds (key cap or account) runs out")
        last_success = gauge("creditmon_last_success_timestamp_seconds", "Unix time of the last successful check")
        last_check = gauge("creditmon_last_check_timestamp_seconds", "Unix time of the last check, failed or not")
        failures = gauge("creditmon_consecutive_failures", "Failed checks since the last successful one")
        level = gauge(
            "creditmon_check_level", "Level of the key (worst condition): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"
        )
        duration = gauge("creditmon_check_duration_seconds", "How long the last check's API call took")
        alert = gauge(
            "creditmon_alert_level", "Open alerts: 1 WARNING, 2 CRITICAL, 3 UNKNOWN", ("condition", "subject")
        )
        # Per-key series for the worst METRICS_MAX_KEYS keys; every key counts in creditmon_keys by level.
        shown = self.found.worst_keys(settings.METRICS_MAX_KEYS)
        rest = self.found.key_count - len(shown)
        for key_status in shown:
            values = [key_status.name, key_status.hash_prefix]
            success, latest = key_status.success, key_status.log
            if success is not None:
                if success.remaining is not None:
                    remaining.add_metric(values, success.remaining)
                if success.usage is not None:
                    usage.add_metric(values, success.usage)
                if success.credit_limit is not None:
                    limit.add_metric(values, success.credit_limit)
                last_success.add_metric(values, success.timestamp.timestamp())
            for window, rate in key_status.rates.items():
                if rate.known:
                    burn.add_metric([*values, window], rate.rate)
            if key_status.days_left is not None:
                days_left.add_metric(values, key_status.days_left)
            if latest is not None:
                last_check.add_metric(values, latest.timestamp.timestamp())
                if latest.duration_ms is not None:
                    duration.add_metric(values, latest.duration_ms / 1000)
            failures.add_metric(values, key_status.failures)
            level.add_metric(values, key_status.level)
            for open_alert in key_status.alerts:
                alert.add_metric([*values, open_alert.condition, open_alert.subject], open_alert.level)
        for open_alert in self.found.unattached_alerts:
            alert.add_metric(["", "", open_alert.condition, open_alert.subject], open_alert.level)
        yield from (remaining, usage, limit, burn, days_left, last_success, last_check, failures, level, duration)
        yield alert
        yield from self.layer_metrics(labels, shown)
        counts = GaugeMetricFamily("creditmon_keys", "Watched keys per level, every key", labels=["level"])
        found_counts = self.found.counts
        for each in Level:
            counts.add_metric([each.label], found_counts.get(each.label, 0))
        yield counts
        omitted = GaugeMetricFamily(
            "creditmon_keys_without_series", "Keys beyond METRICS_MAX_KEYS (the healthiest): counted, no per-key series"
        )
        omitted.add_metric([], rest)
        yield omitted
        account = self.found.account
        if account.known:
            balance = GaugeMetricFamily("creditmon_account_balance_usd", "Account credits minus usage (/credits)")
            balance.add_metric([], account.balance)
            yield balance
            if account.burn.known:
                rate = GaugeMetricFamily("creditmon_account_burn_rate_usd_per_day", "Account-wide spend per day")
                rate.add_metric([], account.burn.rate)
                yield rate
            if account.days_left is not None:
                left = GaugeMetricFamily("creditmon_account_days_left", "Days until the account balance runs out")
                left.add_metric([], account.days_left)
                yield left
            account_level = GaugeMetricFamily("creditmon_account_level", "Level of the account balance and forecast")
            account_level.add_metric([], account.level)
            yield account_level
        if self.catalogue_age is not None:
            age = GaugeMetricFamily(
                "creditmon_model_catalogue_age_seconds", "Seconds since the model catalogue (list prices) was fetched"
            )
            age.add_metric([], self.catalogue_age)
            yield age
        overall = GaugeMetricFamily("creditmon_level", "The worst level of every key and the account")
        overall.add_metric([], self.found.level)
        yield overall


@login_not_required
@require_GET
@never_cache
def status_view(request: HttpRequest) -> JsonResponse:
    """Current status per key and for the account: levels, burn rates, days left, open alerts."""
    if (refused := api_auth_error(request)) is not None:
        return refused
    try:
        return JsonResponse(status_document(request.GET, timezone.now()))
    except ValueError as error:
        return JsonResponse({"error": str(error)}, status=400)


def status_document(params, now: datetime) -> dict:
    """The /api/status/ object: the status built once, a page of its keys. Raises ValueError for a bad page."""
    found = status.build(now, pages=True)
    wanted = params.get("level", "").strip().upper()
    if wanted and wanted not in Level.names:
        raise ValueError(f"level must be one of {', '.join(name.lower() for name in Level.names)}")
    level = Level[wanted] if wanted else None
    if found.stored is None:
        keys = [k for k in found.keys if level is None or k.level == level]
        shown, page = page_of(params, len(keys))
        keys = keys[shown]
    else:  # many keys: counted from the stored levels, the page built live
        shown, page = page_of(params, found.counts.get(level.label, 0) if level is not None else found.key_count)
        keys = found.worst_keys(shown.stop - shown.start, level, offset=shown.start)
    return {**found.as_dict(keys), "counts": found.counts, "page": {**page, "level": wanted.lower() or None}}


STATUS_PER_PAGE, STATUS_MAX_PER_PAGE = 500, 1000


def page_of(params, total: int) -> tuple[slice, dict]:
    """`?page=2&per_page=100` of `total` keys: the slice to show and the page's figures. Raises ValueError."""
    numbers = {}
    for name, default, most in (("page", 1, None), ("per_page", STATUS_PER_PAGE, STATUS_MAX_PER_PAGE)):
        text = params.get(name, "").strip() or str(default)
        if not text.isdigit() or int(text) < 1 or (most and int(text) > most):
            raise ValueError(f"{name} must be a whole number from 1" + (f" to {most}" if most else ""))
        numbers[name] = int(text)
    number, per_page = numbers["page"], numbers["per_page"]
    pages = max(1, -(-total // per_page))
    if number > pages:
        raise ValueError(f"page {number} is past the last page ({pages})")
    start = (number - 1) * per_page
    return slice(start, min(start + per_page, total)), {
        "number": number,
        "per_page": per_page,
        "pages": pages,
        "keys": total,
    }


@login_not_required
@require_GET
@never_cache
def models_advice(request: HttpRequest) -> JsonResponse:
    """The advisor's answer (the `advisemodels --json` object): ?days=30 (1-90), optional ?model=ID."""
    if (refused := api_auth_error(request)) is not None:
        return refused
    raw = request.GET.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 90:
        return JsonResponse({"error": "days must be a whole number from 1 to 90"}, status=400)
    model = request.GET.get("model", "").strip()[:200] or None
    return JsonResponse(advisor.advice(timezone.now(), int(raw), model))


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
    if not keys:  # nothing to read, and PostgreSQL refuses the SQL below's empty "key_id IN ()"
        return points
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
    if resolution == "hour":  # per key: its partial first hour, the stored hours in order, its partial last
        for key_id, hour_iso, *figures in hour_parts(start, end, keys):
            points[key_id].append(_point(hour_iso, *figures))
        return points
    # Whole UTC days from the daily rows (a year is 365 rows a key at any density); the partial days at
    # either end of the range from their hours, so every figure is what the hourly buckets would give.
    day = timedelta(days=1)
    first_full = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_full += day if first_full < start else timedelta(0)
    last_end = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first_full >= last_end:
        parts = hour_parts(start, end, keys)
    else:
        parts = hour_parts(start, first_full, keys, end_inclusive=False)
        parts += stored_days(first_full, last_end, keys) + hour_parts(last_end, end, keys)
    merged: dict[tuple, list] = {}
    for key_id, hour_iso, checks, failures, used, remaining, limit, balance, last in parts:
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


def stored_days(first: datetime, last: datetime, keys: list[ApiKey]) -> list[tuple]:
    """The UTC daily rows of days [first, last) as history tuples, read as plain tuples."""
    text = ISO_TEXT.get(connection.vendor, "{}")
    sql = (
        f"SELECT key_id, day, checks, failures, usage_max, remaining_min, limit_max, balance_min,"
        f" {text.format('last_at')} FROM {UtcDailyFigure._meta.db_table}"
        f" WHERE key_id IN ({', '.join(['%s'] * len(keys))}) AND day >= %s AND day < %s ORDER BY key_id, day"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*(k.pk for k in keys), first.date(), last.date()])
        found = cursor.fetchall()
    return [(row[0], f"{row[1]}T00:00:00+00:00", *row[2:8], _utc_iso(row[8])) for row in found]


def hour_parts(start: datetime, end: datetime, keys: list[ApiKey], end_inclusive: bool = True) -> list[tuple]:
    """Hourly history tuples of [start, end]: whole UTC hours from the hourly rows, the partial hours at
    either end from the log itself, so every figure is what the raw rows give. Per key, in time order."""
    HourlyFigure.objects.refresh()
    logs = CreditLog.objects.filter(key__in=keys)
    upto = {"timestamp__lte": end} if end_inclusive else {"timestamp__lt": end}
    hour = timedelta(hours=1)
    first_full = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first_full += hour if first_full < start else timedelta(0)
    last_end = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if first_full >= last_end:  # less than an hour apart: the log alone
        head, tail = [logs.filter(timestamp__gte=start, **upto)], []
    else:  # each within one hour: at most one point per key before, one after the stored hours
        # Each with its own tight bounds: given the range's too, SQLite scans the whole range per key.
        head = [logs.filter(timestamp__gte=start, timestamp__lt=first_full)]
        tail = [logs.filter(timestamp__gte=last_end, **upto)]
    stored = []
    if first_full < last_end:
        text = ISO_TEXT.get(connection.vendor, "{}")
        where = f" WHERE key_id IN ({', '.join(['%s'] * len(keys))}) AND hour >= %s AND hour < %s"
        params = [*(k.pk for k in keys), *(connection.ops.adapt_datetimefield_value(t) for t in (first_full, last_end))]
        # 720 rows a key a month, read as plain tuples: SQLite's stored text is already the ISO time.
        columns = ", ".join(text.format(c) if c in ("hour", "last_at") else c for c in HOURLY_COLUMNS)
        sql = f"SELECT {columns} FROM {HourlyFigure._meta.db_table}{where} ORDER BY key_id, hour"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            stored = [(row[0], _utc_iso(row[1]), *row[2:8], _utc_iso(row[8])) for row in cursor.fetchall()]
    before = sorted(_part(p) for edge in head for p in hourly_aggregates(edge))
    after = [_part(p) for edge in tail for p in hourly_aggregates(edge)]
    ordered = before + stored + after
    ordered.sort(key=lambda part: part[0])  # stable: per key, its hours stay in time order
    return ordered


# The database writes a UTC time as datetime.isoformat() would (SQLite stores it as text already;
# PostgreSQL's own text beats psycopg's pure-Python timestamp parser 7,200 times over).
ISO_TEXT = {
    "sqlite": "CAST({0} AS TEXT)",
    "postgresql": "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {0})"
    " = {0} THEN '' ELSE to_char({0} AT TIME ZONE 'UTC', '.US') END || '+00:00'",
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


def history_document(params, now: datetime) -> dict:
    """The /api/history/ object for `days` or `start`/`end`, `resolution` and `key` (hash prefix or name).

    Raises ValueError (a bad range) or LookupError (no such key) with a message fit to show the caller.
    """
    start, end = requested_range(params, now)
    resolution = resolution_for(start, end, params.get("resolution"))
    if wanted := params.get("key"):
        keys = [k for k in ApiKey.objects.all() if k.hash.startswith(wanted.lower()) or k.display_name == wanted]
        if not keys:
            raise LookupError(f"no such key: {wanted[:80]}")
        shown, page = page_of(params, len(keys))
        keys = keys[shown]
    else:  # pages of keys, as /api/status/: ten thousand keys' history is not one answer
        shown, page = page_of(params, ApiKey.objects.count())
        keys = list(ApiKey.objects.all()[shown])
    points = history_points(start, end, resolution, keys)
    return {
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
        "page": page,
    }


@login_not_required
@require_GET
@never_cache
def history(request: HttpRequest) -> JsonResponse:
    """Logged history per key over `?days=N` or `?start=&end=`; bucketed by the database beyond a week."""
    if (refused := api_auth_error(request)) is not None:
        return refused
    try:
        return JsonResponse(history_document(request.GET, timezone.now()))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except LookupError as exc:  # an empty list would read as "no data"
        return JsonResponse({"error": str(exc)}, status=404)
