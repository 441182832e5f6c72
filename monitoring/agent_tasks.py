"""Agent tasks: one unit of work per alert, for an agent or a person, with the evidence to act on.

The alert lifecycle drives them (`alerts.record` calls `on_alert_event`): an alert opening creates its
task, a change of level updates it (a task marked done while its alert got worse opens again), and the
alert resolving closes it: an open or claimed task becomes `done` with the note "alert resolved: <reason>";
a task already done or dismissed keeps its state and note. Tasks not tied to an alert come from `open_task`.

Agents claim a task (it holds AGENT_TASK_CLAIM_MINUTES; an expired claim is open again), then complete or
dismiss it. Every change is posted to AGENT_WEBHOOK_URL (agent_webhook). The body and evidence are read
from `status` (the same figures as every surface), never recomputed here, and never hold a key secret.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import advisor, agent_webhook, drivers, report, status
from .logredact import escape_controls, redact
from .models import AgentTask, Alert, AlertEvent, ApiKey, Level
from .status import money

logger = logging.getLogger("monitoring")

SCHEMA = "creditmon.task/v1"
MODEL_EXPIRY = "model_expiry"  # a used model is being retired (the advisor adds the condition)

KIND_BY_CONDITION: dict[str, str] = {
    Alert.BALANCE: AgentTask.TOP_UP,
    Alert.FORECAST: AgentTask.TOP_UP,
    Alert.KEY_LIMIT: AgentTask.TOP_UP,
    Alert.TOPUP_MISSED: AgentTask.TOP_UP,
    Alert.BUDGET: AgentTask.RAISE_BUDGET,
    Alert.BUDGET_LAYER: AgentTask.RAISE_BUDGET,
    Alert.FREE_QUOTA: AgentTask.TOP_UP,  # $10 of credits ever bought lifts the quota from 50 to 1,000 a day
    Alert.SPIKE: AgentTask.INVESTIGATE_SPIKE,
    Alert.MODEL_SPIKE: AgentTask.INVESTIGATE_SPIKE,
    Alert.RUNAWAY: AgentTask.INVESTIGATE_SPIKE,
    Alert.EXPIRY: AgentTask.REPLACE_KEY,
    Alert.STALE: AgentTask.CHECK_MONITOR,
    Alert.FAILURES: AgentTask.CHECK_MONITOR,
    MODEL_EXPIRY: AgentTask.MIGRATE_MODEL,
}
# A failed check says more than "the monitor is blind": a rejected key, an empty account, a budget refusal.
KIND_BY_HTTP_STATUS = {401: AgentTask.REPLACE_KEY, 402: AgentTask.TOP_UP, 403: AgentTask.RAISE_BUDGET}
SPIKE_CONDITIONS = {Alert.SPIKE, Alert.MODEL_SPIKE, Alert.RUNAWAY}
# The status figures a task carries as evidence (whatever of them the status has: budget layers add `limits`).
KEY_FIGURES = (
    "level",
    "message",
    "remaining",
    "usage",
    "limit",
    "limit_remaining",
    "limit_reset",
    "limit_resets_at",
    "account_balance",
    "burn_rate",
    "burn_rate_window",
    "burn_rate_per_day",
    "days_left",
    "key_days_left",
    "account_days_left",
    "binding",
    "binding_text",
    "limits",
    "exhaustion_date",
    "exhaustion_range",
    "last_success",
    "consecutive_failures",
    "http_status",
)
ACCOUNT_FIGURES = ("known", "balance", "total_credits", "total_usage", "burn_rate_per_day", "burn_rate_window",
                   "days_left", "exhaustion_date", "checked_at")  # fmt: skip


class TaskNotFound(LookupError):
    """No task with that id."""


class TaskConflict(Exception):
    """The task cannot take this action now (claimed by someone else, or closed); the message says why."""


# --- the document ---------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def task_document(task: AgentTask, now: datetime | None = None) -> dict:
    """The versioned task document served by the API, the MCP tools and the webhook (never a key secret)."""
    now = now or timezone.now()
    expired = task.claim_expired(now)
    return {
        "schema": SCHEMA,
        "id": task.pk,
        "kind": task.kind,
        "state": task.current_state(now),
        "title": task.title,
        "body": task.body,
        "evidence": task.evidence,
        "suggested_actions": task.suggested_actions,
        "done_when": task.done_when,
        "alert": task.alert_id,
        "key": task.key.display_name if task.key is not None else None,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "claimed_by": None if expired else task.claimed_by or None,
        "claimed_at": None if expired else _iso(task.claimed_at),
        "claim_expires_at": None if expired else _iso(task.claim_expires_at),
        "done_at": _iso(task.done_at),
        "note": task.note,
    }


# --- what a task says, from the status --------------------------------------------------------


def kind_for(alert: Alert, http_status: int | None = None) -> str | None:
    """The kind of work an alert asks for; None for a condition no agent can act on."""
    if alert.condition == Alert.FAILURES and http_status in KIND_BY_HTTP_STATUS:
        return KIND_BY_HTTP_STATUS[http_status]
    return KIND_BY_CONDITION.get(alert.condition)


def _who(alert: Alert) -> str:
    return alert.key.display_name if alert.key is not None else "the account"


def done_when(alert: Alert) -> str:
    """The condition that resolves the alert, in words an agent can check against /api/status/."""
    who = _who(alert)
    rules = {
        Alert.BALANCE: f"{who}'s remaining credit is at or above {money(settings.OPENROUTER_CREDIT_THRESHOLD)} "
        f"(plus the {settings.ALERT_HYSTERESIS:.0%} hysteresis margin) on a check",
        Alert.FORECAST: f"{who}'s days left are at or above {settings.FORECAST_WARNING_DAYS:g} on a check",
        Alert.KEY_LIMIT: f"{who} has used less than {settings.KEY_LIMIT_WARNING_PERCENT:g}% of its limit",
        Alert.TOPUP_MISSED: "credits are added to the account, or the balance stops falling below the threshold",
        Alert.BUDGET: f"this month's spend and its projection stay within {money(settings.MONTHLY_BUDGET)}",
        Alert.SPIKE: f"{who}'s spend today falls back under {settings.SPIKE_FACTOR:g}x its daily average "
        "(or the day ends)",
        Alert.RUNAWAY: f"the spend watch sees {who}'s pace back under {settings.WATCH_FACTOR:g}x its burn rate",
        Alert.MODEL_SPIKE: f"{alert.subject}'s spend on the last completed day is back under "
        f"{settings.SPIKE_FACTOR:g}x its 7-day average",
        Alert.EXPIRY: f"{who} no longer expires within {settings.KEY_EXPIRY_WARNING_DAYS:g} days "
        "(replaced by a new key, or its expiry moved)",
        Alert.FAILURES: f"a check of {who} succeeds",
        Alert.STALE: f"a check of {who} succeeds within two of the schedule's intervals",
    }
    return rules.get(alert.condition, f"the {alert.get_condition_display()} alert resolves")


def suggested_actions(kind: str, alert: Alert, figures: dict) -> list[dict]:
    """What an agent (or a person) can do, each a sentence with the address to do it at."""
    topup, keys = settings.OPENROUTER_TOPUP_URL, settings.OPENROUTER_KEYS_URL
    who = _who(alert)
    found: list[dict] = []
    if kind == AgentTask.TOP_UP:
        cap_left, account = figures.get("limit_remaining"), figures.get("account_balance")
        cap_binds = figures.get("binding") == "key" or alert.condition == Alert.KEY_LIMIT
        cap_binds = cap_binds or (cap_left is not None and (account is None or cap_left <= account))
        if cap_binds:  # the key's own cap runs out before the account: credits alone do not help it
            text = f"Raise {who}'s own limit"
            if cap_left is not None and figures.get("limit") is not None:
                text += f" ({money(cap_left)} of {money(figures['limit'])} left)"
            found.append({"action": "raise_key_limit", "text": text, "url": keys})
        found.append({"action": "top_up", "text": f"Top up the account's credits at {topup}", "url": topup})
    elif kind == AgentTask.RAISE_BUDGET:
        for layer in figures.get("limits") or []:
            if layer.get("level") not in (None, "OK"):
                name = layer.get("guardrail_id") or layer.get("budget_id") or layer.get("scope")
                text = f"Raise the {layer.get('scope')} budget {name}'s {layer.get('reset_interval') or ''} limit"
                found.append({"action": "raise_budget", "text": " ".join(text.split()), "url": keys})
        if alert.condition == Alert.BUDGET:
            found.append({"action": "raise_budget", "text": "Raise MONTHLY_BUDGET, or cut this month's spend"})
        if not found:
            found.append({"action": "raise_budget", "text": "Raise the budget that refuses the key", "url": keys})
    elif kind == AgentTask.INVESTIGATE_SPIKE:
        found.append({"action": "find_spender", "text": "See which key, model and factor drove it (Why)"})
        found.append({"action": "move_traffic", "text": "Move the named model's traffic to a cheaper model, or fix "
                      "the caller that multiplied its requests or tokens"})  # fmt: skip
        found.append({"action": "cap_key", "text": f"Cap {who}'s limit while it is investigated", "url": keys})
    elif kind == AgentTask.REPLACE_KEY:
        found.append({"action": "replace_key", "text": f"Create a new key at {keys} and configure it instead of "
                      f"{who}'s", "url": keys})  # fmt: skip
    elif kind == AgentTask.CHECK_MONITOR:
        found.append({"action": "check_worker", "text": "Check that the worker (manage.py qcluster) runs and its "
                      "log shows the checks succeeding"})  # fmt: skip
        found.append({"action": "check_key", "text": f"Check that {who}'s key is valid and OpenRouter is reachable",
                      "url": keys})  # fmt: skip
    elif kind == AgentTask.MIGRATE_MODEL:
        model = alert.subject or "the model"
        found.append({"action": "migrate_model", "text": f"Move {model}'s traffic to another model before it goes"})
    for action in found:
        action.setdefault("url", None)
    return found


def links(alert: Alert | None, key: ApiKey | None) -> list[tuple[str, str]]:
    """The pages behind a task (when SITE_URL is set)."""
    if not settings.SITE_URL:
        return []
    found = []
    if alert is not None:
        found.append(("Alerts", f"{settings.SITE_URL}{reverse('monitoring-alerts')}#alert-{alert.pk}"))
    if key is not None:
        found.append(("Financial", f"{settings.SITE_URL}{reverse('monitoring-financial')}?key={key.pk}"))
    found.append(("Status (JSON)", f"{settings.SITE_URL}{reverse('monitoring-api-status')}"))
    return found


def evidence_for(alert: Alert, now: datetime, found: status.Status | None = None) -> tuple[dict, list[str]]:
    """The figures as data (from `status.build`, or `found` when it holds the alert's key) and as the report's
    own lines, for one alert."""
    if found is None or (alert.key is not None and found.for_key(alert.key) is None):
        found = status.build(now, keys=[alert.key] if alert.key is not None else [])
    evidence: dict = {
        "condition": alert.condition,
        "subject": alert.subject or None,
        "level": Level(alert.level).label,
        "message": alert.message,
        "value": alert.value,
        "opened_at": _iso(alert.opened_at),
        "as_of": _iso(now),
    }
    account = found.account.as_dict()
    evidence["account"] = {name: account[name] for name in ACCOUNT_FIGURES if name in account}
    lines: list[str] = []
    key_status = found.for_key(alert.key) if alert.key is not None else None
    if key_status is not None:
        data = key_status.as_dict()
        evidence["key"] = {"name": key_status.name, "key_hash": key_status.hash_prefix or None}
        evidence["figures"] = {name: data[name] for name in KEY_FIGURES if name in data}
        lines = [line for line in report.key_block(key_status)[1:] if line != report.verdict_line(key_status)]
    if found.account.known:
        lines += report.account_block(found)
    if alert.condition in SPIKE_CONDITIONS:
        evidence["explanation"] = drivers.explain_spike(alert.key, now, model=alert.subject or None)
    return evidence, [line for line in lines if line.strip()]


def compose(alert: Alert, now: datetime, found: status.Status | None = None) -> dict:
    """Every field of the alert's task, read from the alert and the status (`found`, else built here)."""
    evidence, lines = evidence_for(alert, now, found)
    http_status = (evidence.get("figures") or {}).get("http_status")
    kind = kind_for(alert, http_status) or AgentTask.CHECK_MONITOR
    label = dict(AgentTask.KIND_CHOICES)[kind]
    what = alert.get_condition_display() + (f" ({alert.subject})" if alert.subject else "")
    # Names and messages come from OpenRouter and key owners: one line each, so none can forge a heading.
    title = escape_controls(f"{label}: {_who(alert)} - {what}, {Level(alert.level).label}")
    actions = suggested_actions(kind, alert, evidence.get("figures") or {})
    for action in actions:
        action["text"] = escape_controls(action["text"])
    until = escape_controls(done_when(alert))
    body = [
        f"## {title}",
        "",
        f"**{Level(alert.level).label}** since {alert.opened_at:%Y-%m-%d %H:%M} UTC: {escape_controls(alert.message)}",
        "",
        "### Figures (from the status every surface reads)",
        *[f"- {escape_controls(line)}" for line in lines or ["no successful check yet"]],
    ]
    explanation = evidence.get("explanation")
    if explanation:
        body += ["", "### Why", escape_controls(explanation["text"])]
    body += ["", "### What to do", *[f"- {a['text']}" for a in actions]]
    body += ["", "### Done when", until]
    pages = links(alert, alert.key)
    if pages:
        body += ["", "### Links", *[f"- [{name}]({url})" for name, url in pages]]
    return {
        "kind": kind,
        "title": redact(title)[:300],
        "body": redact("\n".join(body)),
        "evidence": evidence,
        "suggested_actions": actions,
        "done_when": until,
        "key": alert.key,
    }


# --- the alert lifecycle ----------------------------------------------------------------------


TASK_EVENTS = (AlertEvent.OPENED, AlertEvent.ESCALATED, AlertEvent.DEESCALATED, AlertEvent.RESOLVED)


def on_alert_event(alert: Alert, kind: str, now: datetime, found: status.Status | None = None) -> AgentTask | None:
    """Create, update or close the alert's task for one transition (inside the alert's transaction).
    `found`: a status of the alert's key built after the transition (else one is built here).

    A failure here is logged and leaves the alert's own transition intact (a savepoint)."""
    if kind not in TASK_EVENTS:
        return None
    try:
        with transaction.atomic():
            if kind == AlertEvent.RESOLVED:
                return close_for_alert(alert, now)
            return sync_for_alert(alert, now, kind == AlertEvent.ESCALATED, found, opened=kind == AlertEvent.OPENED)
    except Exception:  # the task is the alert's companion: it never costs the alert its transition
        logger.exception("Agent task for alert %s could not be written", alert.pk)
        return None


def on_alert_events(transitions: list[tuple[Alert, str]], now: datetime) -> None:
    """The tasks of one evaluation's transitions, their figures read from one status of every key they name,
    built after all of them: thousands of alerts in a run cost one build, not one each. The new alerts' tasks
    are written first, together; then the others follow, in order, each in its own savepoint."""
    writes = [(alert, kind) for alert, kind in transitions if kind in TASK_EVENTS]
    composed = [alert for alert, kind in writes if kind != AlertEvent.RESOLVED and kind_for(alert) is not None]
    found = None
    if composed:
        try:
            found = status.build(now, keys=list({alert.key for alert in composed if alert.key is not None}))
            found.load_ranges()  # every exhaustion range's daily spend in two queries, not two per task
        except Exception:  # each task then builds its own, and fails alone if it must
            logger.exception("The status for %d agent tasks could not be built", len(composed))
    opened = [alert for alert, kind in writes if kind == AlertEvent.OPENED and kind_for(alert) is not None]
    created = open_for_alerts(opened, now, found) if found is not None else set()
    for alert, kind in writes:
        if not (kind == AlertEvent.OPENED and alert.pk in created):
            on_alert_event(alert, kind, now, found)


def open_for_alerts(alerts: list[Alert], now: datetime, found: status.Status) -> set[int]:
    """The tasks of newly opened alerts, written in one statement; returns the alerts whose task it wrote (none
    on a failure, logged: then each is written on its own, and fails alone if it must)."""
    if not alerts:
        return set()
    try:
        with transaction.atomic():
            new = [AgentTask(alert=a, created_at=now, updated_at=now, **compose(a, now, found)) for a in alerts]
            tasks = AgentTask.objects.bulk_create(new)
            for task in tasks:
                logger.info("Agent task %s opened: %s", task.pk, task.title)
                agent_webhook.queue(task, agent_webhook.CREATED, task_document(task, now), now)
    except Exception:
        logger.exception("The agent tasks of %d new alerts could not be written together", len(alerts))
        return set()
    return {alert.pk for alert in alerts}


def sync_for_alert(
    alert: Alert, now: datetime, reopen: bool = False, found: status.Status | None = None, opened: bool = False
) -> AgentTask | None:
    """Create the alert's task, or refresh it with the alert's new level and figures. `opened`: the alert was
    created just now, so it has no task yet (not looked for: thousands open in a first run of many keys)."""
    if kind_for(alert) is None:
        return None
    fields = compose(alert, now, found)
    task = None if opened else AgentTask.objects.select_for_update().filter(alert=alert).first()
    if task is None:
        task = AgentTask.objects.create(alert=alert, created_at=now, updated_at=now, **fields)
        logger.info("Agent task %s opened: %s", task.pk, task.title)
        agent_webhook.queue(task, agent_webhook.CREATED, task_document(task, now), now)
        return task
    for name, value in fields.items():
        setattr(task, name, value)
    task.updated_at, task.updated_by = now, "creditmon"
    if reopen and task.state == AgentTask.DONE:  # marked done, yet the alert got worse: the work is not done
        task.state, task.done_at = AgentTask.OPEN, None
        task.claimed_by, task.claimed_at, task.claim_expires_at = "", None, None
        task.note = f"reopened: the alert escalated to {Level(alert.level).label} after it was marked done"
    task.save()
    agent_webhook.queue(task, agent_webhook.UPDATED, task_document(task, now), now)
    return task


def close_for_alert(alert: Alert, now: datetime) -> AgentTask | None:
    """The alert resolved: its open or claimed task is done, with the reason."""
    task = AgentTask.objects.select_for_update().filter(alert=alert).first()
    if task is None or task.is_closed:
        return task
    task.state, task.done_at, task.updated_at, task.updated_by = AgentTask.DONE, now, now, "creditmon"
    task.claim_expires_at = None
    task.note = redact(escape_controls(f"alert resolved: {alert.message}"))
    task.save()
    logger.info("Agent task %s closed: alert resolved", task.pk)
    agent_webhook.queue(task, agent_webhook.CLOSED, task_document(task, now), now)
    return task


def open_task(
    kind: str,
    *,
    key: ApiKey | None = None,
    alert: Alert | None = None,
    title: str,
    body: str,
    evidence: dict,
    suggested_actions: list[dict],
    done_when: str,
    now: datetime | None = None,
) -> AgentTask:
    """A task not driven by an alert's lifecycle (for example the advisor's weekly optimize_models)."""
    if kind not in dict(AgentTask.KIND_CHOICES):
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(dict(AgentTask.KIND_CHOICES))}")
    now = now or timezone.now()
    with transaction.atomic():
        task = AgentTask.objects.create(
            kind=kind,
            key=key,
            alert=alert,
            title=redact(title)[:300],
            body=redact(body),
            evidence=evidence,
            suggested_actions=suggested_actions,
            done_when=done_when,
            created_at=now,
            updated_at=now,
        )
        agent_webhook.queue(task, agent_webhook.CREATED, task_document(task, now), now)
    logger.info("Agent task %s opened: %s", task.pk, task.title)
    agent_webhook.deliver_pending(now, task=task)
    return task


OPTIMIZE_EVERY = timedelta(days=7)


def open_optimization_task(now: datetime) -> AgentTask | None:
    """At most weekly: an `optimize_models` task when one like-for-like candidate would have saved more than
    ADVISOR_SAVING_PERCENT of the account's spend (the advisor's own figures, never recomputed here)."""
    recent = AgentTask.objects.filter(kind=AgentTask.OPTIMIZE_MODELS, created_at__gt=now - OPTIMIZE_EVERY)
    if recent.exists():
        return None
    found = advisor.optimization_opportunity(now)
    if found is None:
        return None
    saving, share = money(found["saving"]), found["saving_percent_of_account"]
    title = f"Move {found['model']}'s work to {found['candidate']}: {saving} less ({share}% of the account's spend)"
    body = "\n".join(
        [
            f"## {escape_controls(title)}",
            "",
            f"Over the last {found['window_days']} days {found['model']} cost {money(found['spend'])}; the same tokens "
            f"on {found['candidate']} would have cost {money(found['cost'])}, {saving} less: {share}% of the "
            f"account's {money(found['account_spend'])}.",
            f"Matched like for like: {', '.join(found['matched'])}. Quality is not compared: try it on your own work.",
            f"Prices from the model catalogue, {found['catalogue_age_hours']} hours old. Details: {found['url']}",
        ]
    )
    actions = [
        {"action": "compare", "text": f"Try {found['candidate']} on a sample of {found['model']}'s requests"},
        {"action": "move_traffic", "text": f"Move {found['model']}'s traffic to {found['candidate']}"},
        {"action": "what_if", "text": "See the projected burn rate and days left on Financial's Model costs"},
    ]
    done_when = f"{found['model']}'s spend falls, or the advice no longer finds a saving above the threshold"
    return open_task(AgentTask.OPTIMIZE_MODELS, title=title, body=body, evidence=found, suggested_actions=actions,
                     done_when=done_when, now=now)  # fmt: skip


# --- agents acting on tasks -------------------------------------------------------------------


def list_tasks(state: str | None = None, now: datetime | None = None) -> list[AgentTask]:
    """Tasks newest first; `state` one of open, claimed, done, dismissed (an expired claim counts as open)."""
    now = now or timezone.now()
    tasks = AgentTask.objects.select_related("key")
    if state:
        if state not in dict(AgentTask.STATE_CHOICES):
            raise ValueError(f"state must be one of {', '.join(dict(AgentTask.STATE_CHOICES))}")
        tasks = tasks.in_state(state, now)
    return list(tasks)


def _act(task_id, now: datetime, change) -> AgentTask:
    """Lock the task, let `change` apply the action (or raise TaskConflict), save, post it."""
    with transaction.atomic():
        try:
            task = AgentTask.objects.select_for_update().get(pk=int(task_id))
        except (AgentTask.DoesNotExist, TypeError, ValueError):
            raise TaskNotFound(f"No agent task {task_id}.") from None
        event = change(task)
        task.updated_at = now
        task.save()
        agent_webhook.queue(task, event, task_document(task, now), now)
    agent_webhook.deliver_pending(now, task=task)
    return task


def _closed_conflict(task: AgentTask) -> TaskConflict:
    when = f" on {task.done_at:%Y-%m-%d %H:%M} UTC" if task.done_at else ""
    return TaskConflict(f"Task {task.pk} is already {task.state}{when}: {task.note or 'no note'}.")


def claim(task_id, agent: str, by: str, now: datetime | None = None) -> AgentTask:
    """Claim a task for `agent` for AGENT_TASK_CLAIM_MINUTES. The same agent claiming again renews it."""
    now = now or timezone.now()
    agent = (agent or by or "").strip()[:150]
    if not agent:
        raise ValueError("Name the agent that claims the task.")

    def change(task: AgentTask) -> str:
        if task.is_closed:
            raise _closed_conflict(task)
        if task.state == AgentTask.CLAIMED and not task.claim_expired(now) and task.claimed_by != agent:
            raise TaskConflict(
                f"Task {task.pk} is claimed by {task.claimed_by} until {task.claim_expires_at:%Y-%m-%d %H:%M} UTC."
            )
        task.state, task.claimed_by, task.claimed_at = AgentTask.CLAIMED, agent, now
        task.claim_expires_at = now + timedelta(minutes=settings.AGENT_TASK_CLAIM_MINUTES)
        task.updated_by = by or agent
        return agent_webhook.UPDATED

    task = _act(task_id, now, change)
    logger.info("Agent task %s claimed by %s (by %s) until %s", task.pk, agent, by, task.claim_expires_at)
    return task


def _close(task_id, state: str, note: str, by: str, now: datetime | None) -> AgentTask:
    now = now or timezone.now()

    def change(task: AgentTask) -> str:
        if task.is_closed:
            raise _closed_conflict(task)
        task.state, task.done_at, task.claim_expires_at = state, now, None
        task.note, task.updated_by = redact((note or "").strip())[:5000], by or ""
        return agent_webhook.CLOSED

    task = _act(task_id, now, change)
    logger.info("Agent task %s %s by %s", task.pk, state, by or "someone")
    return task


def complete(task_id, note: str, by: str, now: datetime | None = None) -> AgentTask:
    """Mark a task done, with what was done. Its alert still resolves only when its condition clears."""
    return _close(task_id, AgentTask.DONE, note, by, now)


def dismiss(task_id, note: str, by: str, now: datetime | None = None) -> AgentTask:
    """Close a task without doing it, saying why."""
    return _close(task_id, AgentTask.DISMISSED, note, by, now)
