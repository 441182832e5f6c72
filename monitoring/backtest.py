"""Replay a spend trace through the real schedules, checks, alerts and notifications on a simulated clock.

Nothing here decides anything: the schedules are the django-q2 rows the migrations declare, each run
calls the function its row names (monitoring.tasks.monitor_job / watch_job) with the simulated `now`,
the simulated OpenRouter (a real HTTP server) answers from the trace, and the notifications go through
Apprise to a local HTTP receiver. The replay runs in a scratch in-memory SQLite database, so the
configured database is never touched.

The trace is a CSV with the header `timestamp,usage,limit,limit_remaining,total_credits,total_usage`:
ISO-8601 UTC times, a row every 10 minutes or less, empty cells are null. Between rows the world holds
the last row's values. With total_credits/total_usage the replay runs with a management key.

Optional budget layer columns follow: `budget_scope,budget_limit,budget_spend,budget_reset` (one layer of
`budgets[]` on /key: its scope such as `api_key`, its limit and spend in its window in USD, and `daily`,
`weekly`, `monthly` or empty for a lifetime budget). The summary then has `blocked_at`: the first time of
each UTC day the layer was spent.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.db.utils import load_backend
from django.test.utils import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from . import forecast
from .models import AlertEvent, CreditLog, Delivery, Level
from .simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY, Simulator

FIELDS = ["timestamp", "usage", "limit", "limit_remaining", "total_credits", "total_usage"]
LAYER_FIELDS = ["budget_scope", "budget_limit", "budget_spend", "budget_reset"]
LAYER_SCOPES = {"api_key", "member", "workspace", "workspace_default_key", "workspace_default_member"}
LAYER_GUARDRAIL = "gr_backtest01"
MAX_STEP = timedelta(minutes=10)
KINDS = {AlertEvent.DEESCALATED: "eased"}  # the trace format's word for a de-escalation


class TraceError(ValueError):
    """The trace cannot be replayed; the message says where and why, in one line."""


@dataclass(frozen=True)
class Layer:
    """A budget layer's figures in one trace row."""

    scope: str
    limit: float
    spend: float
    reset: str | None

    @property
    def spent(self) -> bool:
        return self.limit - self.spend <= 1e-9


@dataclass(frozen=True)
class Row:
    at: datetime
    usage: float
    limit: float | None
    limit_remaining: float | None
    total_credits: float | None
    total_usage: float | None
    layer: Layer | None = None

    @property
    def money_left(self) -> float | None:
        """The tighter of the key's cap left and the account balance, as the trace states them."""
        cap = self.limit_remaining
        if cap is None and self.limit is not None:
            cap = self.limit - self.usage
        known = [v for v in (cap,) if v is not None]
        if self.total_credits is not None and self.total_usage is not None:
            known.append(self.total_credits - self.total_usage)
        return min(known) if known else None


# --- the trace --------------------------------------------------------------------------------


def _number(text: str, name: str, line: int, required: bool = False) -> float | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise TraceError(f"line {line}: `{name}` is empty")
        return None
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"line {line}: `{name}` is not a number: {text[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise TraceError(f"line {line}: `{name}` is not a finite number")
    return value


def _time(text: str, line: int) -> datetime:
    try:
        when = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        raise TraceError(f"line {line}: `timestamp` is not an ISO-8601 time: {(text or '')[:40]!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_trace(lines) -> list[Row]:
    """Rows of a trace, validated: the exact header, times increasing at most 10 minutes apart."""
    reader = csv.reader(lines)
    header = next(reader, None)
    names = [h.strip() for h in header] if header is not None else []
    if names not in (FIELDS, FIELDS + LAYER_FIELDS):
        raise TraceError(f"the header must be exactly {','.join(FIELDS)}")  # or with LAYER_FIELDS after it
    rows: list[Row] = []
    for line, cells in enumerate(reader, start=2):
        if not cells or not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise TraceError(f"line {line}: {len(cells)} cells, expected {len(names)}")
        values = dict(zip(names, cells, strict=True))
        row = Row(
            _time(values["timestamp"], line),
            _number(values["usage"], "usage", line, required=True),
            *(_number(values[name], name, line) for name in FIELDS[2:]),
            layer=_layer(values, line) if names != FIELDS else None,
        )
        if rows and row.at <= rows[-1].at:
            raise TraceError(f"line {line}: timestamps must increase")
        if rows and row.at - rows[-1].at > MAX_STEP:
            raise TraceError(f"line {line}: {row.at - rows[-1].at} after the previous row (at most 10 minutes)")
        if (row.total_credits is None) != (row.total_usage is None):
            raise TraceError(f"line {line}: give both total_credits and total_usage, or neither")
        rows.append(row)
    if len(rows) < 2:
        raise TraceError("the trace needs at least two rows")
    return rows


def _layer(values: dict, line: int) -> Layer | None:
    scope = values["budget_scope"].strip()
    if not scope:
        return None
    if scope not in LAYER_SCOPES:
        raise TraceError(f"line {line}: `budget_scope` is not one of {', '.join(sorted(LAYER_SCOPES))}")
    reset = values["budget_reset"].strip() or None
    if reset not in (None, "daily", "weekly", "monthly"):
        raise TraceError(f"line {line}: `budget_reset` is not daily, weekly, monthly or empty")
    limit = _number(values["budget_limit"], "budget_limit", line, required=True)
    spend = _number(values["budget_spend"], "budget_spend", line, required=True)
    if limit < 0 or spend < 0:
        raise TraceError(f"line {line}: a budget's limit and spend cannot be negative")
    return Layer(scope, limit, spend, reset)


def read_trace(path: str | Path) -> list[Row]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return parse_trace(handle)
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path} is not UTF-8 text") from None


def daily_spend(rows: list[Row]) -> dict[date, float]:
    """The key's spend per UTC day, for the simulated /activity (forecast.daily_spend's rule)."""
    return forecast.daily_spend([(row.at, row.usage) for row in rows], UTC)


# --- the world around the replay --------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _Receiver(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def do_POST(self):  # noqa: N802 - stdlib naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            self.server.received.append(json.loads(body))
        except ValueError:
            self.server.received.append({"raw": body.decode(errors="replace")})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def receiver(port: int = 0) -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server that keeps what Apprise's json:// posts to it (any free port by default)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, name="backtest-receiver", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def scratch_database() -> Iterator[None]:
    """The default connection swapped for a fresh in-memory SQLite database, migrated; restored after."""
    previous = connections["default"]
    config = connections.configure_settings({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
    scratch = load_backend("django.db.backends.sqlite3").DatabaseWrapper(config["default"], "default")
    connections["default"] = scratch
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield
    finally:
        scratch.close()
        connections["default"] = previous


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Thousands of simulated runs would flood the real log: warnings and below are muted meanwhile."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


# --- the replay -------------------------------------------------------------------------------


def replay(rows: list[Row]) -> dict:
    """Run the trace; the summary `--json` prints."""
    started = time.monotonic()
    clock = Clock(rows[0].at)
    account = rows[0].total_credits is not None
    sim = Simulator("management", now=clock)
    sim.remove_key(DEV_KEY)
    sim.set_daily_spend(PROD_KEY, daily_spend(rows) if account else None)
    apply_row(sim, rows[0], account)
    with sim, receiver() as inbox, scratch_database(), quiet_logs():
        overrides = {
            "OPENROUTER_BASE_URL": sim.url,
            "OPENROUTER_API_KEY": PROD_KEY,
            "OPENROUTER_API_KEYS": "",
            "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY if account else "",
            "OPENROUTER_MAX_RETRIES": 0,
            "NOTIFY_URLS": f"json://127.0.0.1:{inbox.server_address[1]}/backtest",
            "HEARTBEAT_URL": "",
            "RETENTION_DAYS": 0,
        }
        with override_settings(**overrides):
            migrated_at = timezone.now()
            runs = run_schedules(sim, clock, rows, account, migrated_at)
            result = summary(rows, runs, inbox.received)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def apply_row(sim: Simulator, row: Row, account: bool) -> None:
    sim.set_key(PROD_KEY, usage=row.usage, limit=row.limit, limit_remaining=row.limit_remaining, spend_per_day=0)
    if account:
        sim.set_account(row.total_credits, row.total_usage)
    sim.layers = []  # the row states the layer's figures exactly (no spend between rows: the key's rate is 0)
    if row.layer is not None:
        layer = row.layer
        sim.add_layer(
            layer.scope, layer.limit, [PROD_KEY], layer.reset, spent=layer.spend, guardrail_id=LAYER_GUARDRAIL
        )


def run_schedules(sim: Simulator, clock: Clock, rows: list[Row], account: bool, migrated_at: datetime) -> dict:
    """Each schedule the migrations declared runs its function when due on the simulated clock, every
    `minutes` after (django-q2's interval schedule), until the trace ends."""
    schedules = list(Schedule.objects.filter(schedule_type=Schedule.MINUTES))
    if not schedules:
        raise TraceError("no interval schedule is declared: run `manage.py migrate` settings?")
    start, end = rows[0].at, rows[-1].at
    due = {s.pk: start + max(s.next_run - migrated_at, timedelta(0)) for s in schedules}
    funcs = {s.pk: import_string(s.func) for s in schedules}
    times = [row.at for row in rows]
    applied = 0
    runs: dict[str, int] = {s.func: 0 for s in schedules}
    while True:
        schedule = min(schedules, key=lambda s: (due[s.pk], s.pk))
        when = due[schedule.pk]
        if when > end:
            break
        index = bisect_right(times, when) - 1
        if index != applied:
            clock.now = when
            apply_row(sim, rows[index], account)
            applied = index
        clock.now = when
        funcs[schedule.pk](now=when)
        runs[schedule.func] += 1
        due[schedule.pk] = when + timedelta(minutes=schedule.minutes)
    return runs


def summary(rows: list[Row], runs: dict, received: list) -> dict:
    exhausted = next((row.at for row in rows if (left := row.money_left) is not None and left <= 1e-9), None)
    sent = (
        Delivery.objects.filter(status=Delivery.SENT)
        .select_related("event__alert")
        .order_by("event__created", "event_id", "id")
    )
    notifications = []
    for delivery in sent:
        event = delivery.event
        notifications.append(
            {
                "at": event.created.isoformat(),
                "kind": KINDS.get(event.kind, event.kind),
                "level": Level(event.level).label,
                "condition": event.alert.condition if event.alert else "",
                "message": event.message,
            }
        )
    warned = [n for n in notifications if n["kind"] not in ("resolved", "eased")]
    lead = None
    if exhausted is not None and warned:
        lead = round((exhausted - datetime.fromisoformat(warned[0]["at"])).total_seconds() / 3600, 2)
    blocked: dict[date, datetime] = {}
    for row in rows:
        if row.layer is not None and row.layer.spent:
            blocked.setdefault(row.at.date(), row.at)
    return {
        "exhausted_at": exhausted.isoformat() if exhausted else None,
        "blocked_at": [when.isoformat() for when in blocked.values()],
        "checks": CreditLog.objects.count(),
        "lead_hours": lead,
        "notifications": notifications,
        "received": len(received),
        "runs": runs,
        "start": rows[0].at.isoformat(),
        "end": rows[-1].at.isoformat(),
        "settings": {
            "CHECK_INTERVAL_MINUTES": settings.CHECK_INTERVAL_MINUTES,
            "WATCH_INTERVAL_MINUTES": settings.WATCH_INTERVAL_MINUTES,
        },
    }
