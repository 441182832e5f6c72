"""creditmon for agents: a Model Context Protocol server (stdio via `manage.py mcpserver`, streamable HTTP at /mcp).

An entry point like the views: every figure is read from `status` (or the function the API and the Financial
page call), every action goes through `alerts`, recorded as done by the agent. Over HTTP the bearer token's
role decides whether a tool may act (`roles.token_role`); over stdio the local user is trusted.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import UTC, timedelta
from pathlib import Path
from typing import Literal

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from . import advisor, agent_tasks, alerts, api, audit, dashboard, drivers, roles, status
from .management.base import MIGRATE_HINT, database_problem, is_missing_table
from .mcp_http import BearerGate
from .models import Alert, ApiKey

logger = logging.getLogger("monitoring")

STDIO_ACTOR = "agent (mcp stdio)"
HTTP_ACTOR = "agent (mcp http)"
MAX_SNOOZE_HOURS = 24 * 30
ALERTS_LISTED = 100  # resolved alerts are many after a year: the newest this many
TASKS_LISTED = 100  # likewise closed tasks
README = Path(settings.BASE_DIR) / "README.md"
LEVELS_HEADING = "### What the levels mean"

INSTRUCTIONS = (
    "creditmon watches OpenRouter credits: balance, key caps, budgets, burn rate, days left and alerts. "
    "Start with get_status (levels: OK, WARNING, CRITICAL, UNKNOWN; days_left is when the binding money runs "
    "out). list_alerts shows what is wrong; acknowledge_alert or snooze_alert record that you are on it. "
    "list_tasks gives one unit of work per alert (claim_task, then complete_task or dismiss_task); explain_spike "
    "says why spend rose. get_spend and get_history show where the money went."
)

app = MCPServer("creditmon", instructions=INSTRUCTIONS)


# --- how every tool answers ---------------------------------------------------------------------


def answers(fn):
    """Fresh database connections around each call (tools run on worker threads), and a sentence for
    every failure: a ValueError's own words, a database outage in words, anything else logged to stderr."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except (ValueError, agent_tasks.TaskNotFound, agent_tasks.TaskConflict) as exc:
            raise ToolError(str(exc)) from None
        except DatabaseError as exc:
            # The address and the driver's words are for the operator's log, not for the caller.
            logger.error("MCP tool %s: %s", fn.__name__, database_problem(exc) or exc)
            if is_missing_table(exc):
                raise ToolError(f"creditmon's database is not set up: {MIGRATE_HINT}.") from None
            raise ToolError("creditmon cannot read its database right now; the server log has the reason.") from None
        except Exception:
            logger.exception("MCP tool %s failed", fn.__name__)
            raise ToolError(f"{fn.__name__} failed inside creditmon; the server log has the reason.") from None
        finally:
            close_old_connections()

    return wrapper


def actor(ctx: Context | None, write: bool) -> str:
    """Who the call is recorded as. Over HTTP (headers present) a write needs the operator token."""
    if ctx is None or ctx.headers is None:
        return STDIO_ACTOR  # stdio or in-process: the local user who started the server
    role = role_of(ctx)
    if role is None:
        raise ToolError("Send Authorization: Bearer <API_TOKEN or API_OPERATOR_TOKEN>.")
    if write and role != roles.OPERATOR:
        raise ToolError("This action needs the operator token (API_OPERATOR_TOKEN); API_TOKEN may only read.")
    return HTTP_ACTOR


def record_task_action(who: str, verb: str, task, ctx: Context | None, detail: str) -> None:
    audit.record(who, audit.TASK_ACTIONS[verb], f"task {task.pk}: {task.title}", token_role=role_of(ctx), detail=detail)


def role_of(ctx: Context | None) -> str | None:
    """The bearer token's role over HTTP (for the audit trail); None over stdio."""
    headers = ctx.headers if ctx is not None else None
    if headers is None:
        return None
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return roles.token_role(token.strip()) if scheme.lower() == "bearer" else None


def find_key(name: str) -> ApiKey:
    """A key by id, by hash (or the prefix the API shows) or by name, as /api/history/?key= names it."""
    wanted = name.strip()
    if not wanted:
        raise ToolError("Name a key: its name, its hash prefix (key_hash in get_status) or its id.")
    keys = list(ApiKey.objects.all())
    found = [k for k in keys if str(k.pk) == wanted]
    found = found or [k for k in keys if k.display_name == wanted or k.name == wanted]
    found = found or [k for k in keys if len(wanted) >= 4 and k.hash.startswith(wanted.lower())]
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{k.display_name} ({k.hash[: status.HASH_PREFIX]})" for k in keys) or "none yet"
    if found:
        raise ToolError(f"{len(found)} keys match {wanted!r}: give more of the hash. Keys: {known}.")
    raise ToolError(f"No key named {wanted!r}. Keys: {known}.")


def open_alert(alert_id: int) -> Alert:
    found = Alert.objects.select_related("key").filter(pk=alert_id).first()
    if found is None:
        raise ToolError(f"No alert with id {alert_id}: list_alerts shows the open ones.")
    if not found.is_open:
        raise ToolError(f"Alert {alert_id} is already resolved: nothing to do.")
    return found


def alert_document(alert: Alert) -> dict:
    """The API's alert object, with its key and who acted on it."""
    return {
        **status.alert_dict(alert),
        "key": alert.key.display_name if alert.key else None,
        "key_hash": alert.key.hash[: status.HASH_PREFIX] if alert.key else None,
        "updated_at": alert.updated_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "acknowledged_by": alert.acknowledged_by or None,
        "snoozed_by": alert.snoozed_by or None,
    }


# --- reading -------------------------------------------------------------------------------------


@app.tool()
@answers
def get_status(
    level: Literal["ok", "warning", "critical", "unknown"] | None = None, page: int = 1, per_page: int = 500
) -> dict:
    """The current status of the watched keys and of the account: the same object as GET /api/status/.

    `level` is the worst of all (OK, WARNING, CRITICAL, UNKNOWN); `counts` the keys per level. Per key, worst
    first: `remaining`, `burn_rate` (USD/day), `days_left` (until the money that binds runs out: the key's cap, a
    budget layer or the account balance, named in `binding`), `message` (why the level), and `open_alerts`.
    Many keys come in pages (`page`, `per_page` up to 1000); `level` here lists only the keys at that level.
    """
    params = {"page": str(page), "per_page": str(per_page)}
    if level:
        params["level"] = level
    return api.status_document(params, timezone.now())


@app.tool()
@answers
def get_history(days: float = 30, key: str | None = None) -> dict:
    """The logged checks over the last `days` days (up to 3660): the same object as GET /api/history/?days=N.

    Every check up to 7 days; hourly buckets up to 14; daily beyond. `key` narrows it to one key (its name,
    hash prefix or id). Each point has `t`, `usage` (cumulative USD), `remaining`, `limit` and `account_balance`.
    """
    params = {"days": repr(days)}
    if key:
        params["key"] = find_key(key).hash
    return api.history_document(params, timezone.now())


@app.tool()
@answers
def get_spend(days: int = 30, by: Literal["model", "key", "day", "workspace"] = "model") -> dict:
    """What was spent over the last `days` completed UTC days, by model, by key or by day: the figures of the
    Financial page (the stored /activity rows, which need OPENROUTER_MANAGEMENT_KEY; by key falls back to the
    logged checks without it). Today's split arrives with tomorrow's activity. `by="workspace"` reads the
    spend OpenRouter reports per workspace (GET /activity?group_by=workspace, management key).
    """
    if not 0 < days <= api.MAX_RANGE_DAYS:
        raise ToolError(f"days must be between 1 and {api.MAX_RANGE_DAYS}.")
    now, tz = timezone.now(), dashboard.reporting_tz()
    utc_today = now.astimezone(UTC).date()
    since = utc_today - timedelta(days=days)
    breakdown = dashboard.spend_breakdown(dashboard.range_start(now, days, tz), tz, since)
    answer = {"days": days, "by": by, "from": since.isoformat(), "to": (utc_today - timedelta(days=1)).isoformat()}
    if by == "day":
        chart = breakdown["chart"]["models"] or breakdown["chart"]["keys"]
        source = "activity" if breakdown["chart"]["models"] else breakdown["keys_source"]
        rows = []
        if chart:
            for n, label in enumerate(chart["labels"]):
                rows.append({"day": label, "spend": round(sum(d["data"][n] for d in chart["datasets"]), 4)})
        return {**answer, "source": source if chart else None, "rows": rows, "note": empty_note(rows)}
    drivers = breakdown[{"model": "models", "key": "keys", "workspace": "workspaces"}[by]]
    source = "checks" if by == "key" and breakdown["keys_source"] == "checks" else "activity"
    rows = [
        {
            by: row["name"],
            "spend": round(row["spend"], 4),
            "requests": row["calls"],
            "share_percent": round(row["share"], 1),
        }
        for row in drivers
    ]
    return {
        **answer,
        "source": source if rows else None,
        "rows": rows,
        "note": empty_note(rows) or "the 10 biggest, as on the Financial page",
    }


def empty_note(rows: list) -> str | None:
    if rows:
        return None
    if not settings.OPENROUTER_MANAGEMENT_KEY:
        return "no spend stored for this range: set OPENROUTER_MANAGEMENT_KEY to store per-model activity"
    return "no spend stored for this range yet (activity is fetched once a UTC day ends)"


@app.tool()
@answers
def list_alerts(state: Literal["open", "resolved", "all"] = "open") -> dict:
    """Alerts worst first (CRITICAL, UNKNOWN, WARNING): `open` ones (default), the newest 100 `resolved`, or
    `all`. Each has `id` (for acknowledge_alert and snooze_alert), `condition`, `level`, `message`, `key`,
    and whether someone acknowledged or snoozed it.
    """
    rows = Alert.objects.select_related("key")
    if state == "open":
        rows = rows.open().worst_first()
    elif state == "resolved":
        rows = rows.filter(resolved_at__isnull=False).order_by("-resolved_at", "-id")[:ALERTS_LISTED]
    else:
        rows = rows.worst_first()[:ALERTS_LISTED]
    found = [alert_document(alert) for alert in rows]
    return {"state": state, "count": len(found), "alerts": found}


# --- acting --------------------------------------------------------------------------------------


@app.tool()
@answers
def acknowledge_alert(alert_id: int, note: str = "", ctx: Context | None = None) -> dict:
    """Acknowledge an open alert: no more reminders until it resolves (a worse level still notifies).

    Say what you are doing about it in `note`; it is recorded in the alert's history. Over HTTP this needs
    the operator token.
    """
    who = actor(ctx, write=True)
    alert = open_alert(alert_id)
    event = alerts.acknowledge(alert, who, note=note.strip())
    if event is not None:
        audit.record(who, audit.ACKNOWLEDGE, f"alert {alert.pk}: {alert}", token_role=role_of(ctx), detail=note)
    done = "acknowledged" if event is not None else f"already acknowledged by {alert.acknowledged_by or 'someone'}"
    return {"result": done, "alert": alert_document(alert)}


@app.tool()
@answers
def snooze_alert(alert_id: int, hours: float, note: str = "", ctx: Context | None = None) -> dict:
    """Snooze an open alert's reminders for `hours` (up to 720); they resume afterwards if it is still open.

    Say why in `note`; it is recorded in the alert's history. Over HTTP this needs the operator token.
    """
    who = actor(ctx, write=True)
    if not 0 < hours <= MAX_SNOOZE_HOURS:
        raise ToolError(f"hours must be more than 0 and at most {MAX_SNOOZE_HOURS} (30 days).")
    alert = open_alert(alert_id)
    now = timezone.now()
    alerts.snooze(alert, now + timedelta(hours=hours), who, now=now, note=note.strip())
    audit.record(who, audit.SNOOZE, f"alert {alert.pk}: {alert}", token_role=role_of(ctx), detail=f"{hours} h {note}")
    return {"result": "snoozed", "alert": alert_document(alert)}


# --- spikes and agent tasks ------------------------------------------------------------------------


@app.tool()
@answers
def explain_spike(key: str | None = None, model: str | None = None) -> dict:
    """Why spend rose, from what creditmon stores: the key's rise today (its readings), and for each model whose
    spend rose on the latest completed UTC day (the stored activity) which factor moved against its own baseline:
    requests, tokens per request or price per token. Each statement names its data; `unknown` says what cannot
    be known yet (today's per-model split arrives with tomorrow's activity). `key`: name, hash prefix or id; none
    for the whole account. `model` narrows it to one model id.
    """
    found = find_key(key) if key else None
    return drivers.explain_spike(found, timezone.now(), model=model or None)


@app.tool()
@answers
def recommend_models(days: int = 30, model: str | None = None) -> dict:
    """What each model the account used over the last `days` completed UTC days cost, and what the same tokens
    would have cost on like-for-like models (context, modalities and capabilities at least the model's), cheapest
    first with `saving` and `saving_percent`. Quality is never compared: `matched` lists the criteria met. The
    same answer as `advisemodels --json` and /api/models/advice; `catalogue_age_hours` says how old the prices are.
    `model` narrows it to one model id.
    """
    if not 0 < days <= api.MAX_RANGE_DAYS:
        raise ToolError(f"days must be between 1 and {api.MAX_RANGE_DAYS}.")
    return advisor.advice(timezone.now(), days, model or None)


@app.tool()
@answers
def list_tasks(state: Literal["open", "claimed", "done", "dismissed", "all"] = "open") -> dict:
    """Agent tasks (one per alert), newest first: `open` (default; an expired claim is open again), `claimed`,
    `done`, `dismissed` or `all` (the newest 100). Each is a creditmon.task/v1 document: `id`, `kind` (top_up,
    raise_budget, investigate_spike, replace_key, check_monitor...), `body` (Markdown with the figures),
    `evidence`, `suggested_actions` and `done_when` (the condition that resolves its alert: check your work).
    """
    now = timezone.now()
    found = agent_tasks.list_tasks(None if state == "all" else state, now=now)[:TASKS_LISTED]
    return {"state": state, "count": len(found), "tasks": [agent_tasks.task_document(t, now) for t in found]}


@app.tool()
@answers
def claim_task(task_id: int, agent: str, ctx: Context | None = None) -> dict:
    """Claim an open task for `agent` (your name, shown on the Alerts page) before working on it. The claim holds
    for a while (AGENT_TASK_CLAIM_MINUTES); claim again to renew it. A task another agent holds is refused with
    who holds it and until when. Over HTTP this needs the operator token.
    """
    who = actor(ctx, write=True)
    task = agent_tasks.claim(task_id, agent, by=who)
    record_task_action(who, "claim", task, ctx, agent)
    return {"result": "claimed", "task": agent_tasks.task_document(task)}


@app.tool()
@answers
def complete_task(task_id: int, note: str, ctx: Context | None = None) -> dict:
    """Mark a task done, saying in `note` what you did (for example "topped up $50, receipt 1234"). Its alert
    resolves only when its condition clears (`done_when`). Over HTTP this needs the operator token.
    """
    who = actor(ctx, write=True)
    task = agent_tasks.complete(task_id, note, by=who)
    record_task_action(who, "complete", task, ctx, note)
    return {"result": "done", "task": agent_tasks.task_document(task)}


@app.tool()
@answers
def dismiss_task(task_id: int, note: str, ctx: Context | None = None) -> dict:
    """Close a task without doing it, saying why in `note` (for example "expected: a batch job runs tonight").
    Over HTTP this needs the operator token.
    """
    who = actor(ctx, write=True)
    task = agent_tasks.dismiss(task_id, note, by=who)
    record_task_action(who, "dismiss", task, ctx, note)
    return {"result": "dismissed", "task": agent_tasks.task_document(task)}


# --- resources and prompts -----------------------------------------------------------------------


@app.resource("creditmon://status", name="status", mime_type="application/json")
def status_resource() -> str:
    """The current status (read-only): the object get_status returns."""
    close_old_connections()
    try:
        return json.dumps(api.status_document({}, timezone.now()))
    finally:
        close_old_connections()


@app.resource("creditmon://levels", name="levels", mime_type="text/markdown")
def levels_resource() -> str:
    """What the levels mean (OK, WARNING, CRITICAL, UNKNOWN): the README's own words."""
    return levels_text()


def levels_text() -> str:
    """The README's "What the levels mean" section, up to the next heading."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(LEVELS_HEADING)
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        body.append(line)
    return "\n".join(body).strip() + "\n"


@app.prompt(name="review_spend", title="Review my OpenRouter spend")
def review_spend(days: int = 30) -> str:
    """Review the OpenRouter spend: what runs out when, what drives the spend, what to do."""
    return (
        f"Review my OpenRouter spend over the last {days} days with the creditmon tools.\n"
        "1. Call get_status: say the overall level, and for each key that is not OK its level, its days left "
        "and what binds it (key cap, budget layer or account balance).\n"
        f"2. Call get_spend(days={days}, by='model') and get_spend(days={days}, by='key'): name the biggest "
        "drivers with their share of the spend.\n"
        f"3. Call get_spend(days={days}, by='day'): say whether the daily spend is rising, steady or falling.\n"
        "4. Call list_alerts: for each open alert, say what it means and the one action that resolves it.\n"
        "End with at most three recommendations, most urgent first, each with the figure it rests on. "
        "Do not acknowledge or snooze anything unless I ask."
    )


# --- HTTP: /mcp on the web server -----------------------------------------------------------------


def http_app():
    """The streamable HTTP app behind a bearer-token gate. Stateless JSON answers: any web worker serves any
    request (no session lives in one worker's memory), and nothing is streamed that a proxy could buffer."""
    inner = app.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        # The gate checks Host against ALLOWED_HOSTS as Django does; a rebinding page cannot send the token.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return BearerGate(inner)
