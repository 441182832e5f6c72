"""CSV exports of the credit log and of spend by model and by key, for the Financial page and the CLI.

Rows are streamed from a database cursor straight into the response (or file), so exporting a
year of five-minute checks never holds more than a chunk of rows in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from .api import HASH_PREFIX, requested_range
from .models import Activity, ApiKey, CreditLog

CHUNK = 2000

CREDIT_LOG_HEADER = [
    "timestamp", "key", "key_hash", "ok", "label", "usage_usd", "limit_usd", "remaining_usd",
    "limit_remaining_usd", "usage_daily_usd", "usage_weekly_usd", "usage_monthly_usd",
    "account_balance_usd", "account_note", "error", "http_status", "duration_ms",
]  # fmt: skip
SPEND_BY_MODEL_HEADER = [
    "date", "model", "usage_usd", "byok_usage_usd", "requests",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
]  # fmt: skip
SPEND_BY_KEY_HEADER = ["date", "key", "key_hash", "usage_usd", "byok_usage_usd", "requests"]


def safe_text(value: str | None) -> str:
    """Text that a spreadsheet will not run as a formula (key and model names come from outside)."""
    value = value or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def cents(value: float | None) -> str:
    """An amount in USD to the cent, as the pages show it ("" when unknown)."""
    return "" if value is None else f"{value:.2f}"


def credit_log_rows(start: datetime, end: datetime, key: ApiKey | None = None) -> Iterator[list]:
    """Every logged check in [start, end) (of one key, if given), oldest first, the header row first."""
    yield CREDIT_LOG_HEADER
    fields = (
        "timestamp", "key__name", "key__label", "key__hash", "ok", "label", "usage", "credit_limit", "remaining",
        "limit_remaining", "usage_daily", "usage_weekly", "usage_monthly", "account_balance", "account_note",
        "error", "http_status", "duration_ms",
    )  # fmt: skip
    rows = CreditLog.objects.filter(timestamp__gte=start, timestamp__lt=end).order_by("timestamp", "id")
    if key is not None:
        rows = rows.filter(key=key)
    for when, name, key_label, key_hash, ok, label, *figures, note, error, status, ms in rows.values_list(
        *fields
    ).iterator(chunk_size=CHUNK):
        yield [
            when.astimezone(UTC).isoformat(),
            safe_text(name or key_label or (key_hash or "")[:HASH_PREFIX]),
            (key_hash or "")[:HASH_PREFIX],
            "true" if ok else "false",
            safe_text(label),
            *[cents(v) for v in figures],
            safe_text(note),
            safe_text(error),
            "" if status is None else status,
            "" if ms is None else ms,
        ]


def _activity_between(start: datetime, end: datetime):
    """Activity rows of the UTC days the range touches (OpenRouter's own buckets are UTC days)."""
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()  # the range's end is exclusive
    return Activity.objects.between(first, last)


def spend_by_model_rows(start: datetime, end: datetime, key: ApiKey | None = None) -> Iterator[list]:
    """Spend per UTC day and model, summed over endpoints and providers.

    OpenRouter's all-keys rows (blank key hash) are the account's total; per-key rows are used only
    where no all-keys row was stored for that day, so nothing is counted twice.
    """
    yield SPEND_BY_MODEL_HEADER
    rows = _activity_between(start, end)
    days_with_totals = rows.filter(api_key_hash="").values("date").distinct()
    chosen = rows.filter(api_key_hash="") | rows.exclude(date__in=days_with_totals)
    totals = (
        chosen.values("date", "model")
        .annotate(
            usage_sum=Sum("usage"),
            byok_sum=Sum("byok_usage_inference"),
            requests_sum=Sum("requests"),
            prompt_sum=Sum("prompt_tokens"),
            completion_sum=Sum("completion_tokens"),
            reasoning_sum=Sum("reasoning_tokens"),
            cached_sum=Sum("cached_tokens"),
        )
        .order_by("date", "-usage_sum", "model")
    )
    for row in totals.iterator(chunk_size=CHUNK):
        yield [
            row["date"].isoformat(),
            safe_text(row["model"]),
            cents(row["usage_sum"]),
            cents(row["byok_sum"]),
            row["requests_sum"],
            row["prompt_sum"],
            row["completion_sum"],
            row["reasoning_sum"],
            row["cached_sum"],
        ]


def spend_by_key_rows(start: datetime, end: datetime, key: ApiKey | None = None) -> Iterator[list]:
    """Spend per UTC day and key (per-key activity rows; one key's, if given), the key named by its hash."""
    yield SPEND_BY_KEY_HEADER
    names = {k.hash: k.display_name for k in ApiKey.objects.only("hash", "name", "label")}
    rows = _activity_between(start, end).exclude(api_key_hash="")
    if key is not None:
        rows = rows.filter(api_key_hash=key.hash)
    totals = (
        rows.values("date", "api_key_hash")
        .annotate(usage_sum=Sum("usage"), byok_sum=Sum("byok_usage_inference"), requests_sum=Sum("requests"))
        .order_by("date", "-usage_sum", "api_key_hash")
    )
    for row in totals.iterator(chunk_size=CHUNK):
        key_hash = row["api_key_hash"]
        yield [
            row["date"].isoformat(),
            safe_text(names.get(key_hash, key_hash[:HASH_PREFIX])),
            key_hash[:HASH_PREFIX],
            cents(row["usage_sum"]),
            cents(row["byok_sum"]),
            row["requests_sum"],
        ]


EXPORTS = {
    "credit-log": credit_log_rows,
    "spend-by-model": spend_by_model_rows,
    "spend-by-key": spend_by_key_rows,
}


class _Echo:
    """csv.writer writes into this and gets the line back, so each row can be streamed."""

    def write(self, value: str) -> str:
        return value


def write_csv(rows: Iterable[list], out) -> int:
    """Write rows to a file-like object; returns the number of data rows (header excluded)."""
    writer = csv.writer(out)
    count = -1
    for row in rows:
        writer.writerow(row)
        count += 1
    return max(count, 0)


def filename(export: str, start: datetime, end: datetime) -> str:
    first: date = timezone.localtime(start).date()
    last: date = timezone.localtime(end).date()
    return f"creditmon-{export}-{first.isoformat()}-to-{last.isoformat()}.csv"


def _stream(request: HttpRequest, export: str) -> HttpResponse:
    try:
        start, end = requested_range(request.GET, timezone.now())
    except ValueError as exc:
        return HttpResponse(f"{exc}\n", status=400, content_type="text/plain")
    key = None
    if request.GET.get("key"):  # the key chosen on the Financial page
        key = ApiKey.objects.named(request.GET["key"])
        if key is None:
            return HttpResponse("no such key: give a key's id or hash\n", status=404, content_type="text/plain")
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in EXPORTS[export](start, end, key)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename(export, start, end)}"'
    return response


@require_GET
def credit_log_csv(request: HttpRequest) -> HttpResponse:
    return _stream(request, "credit-log")


@require_GET
def spend_by_model_csv(request: HttpRequest) -> HttpResponse:
    return _stream(request, "spend-by-model")


@require_GET
def spend_by_key_csv(request: HttpRequest) -> HttpResponse:
    return _stream(request, "spend-by-key")
