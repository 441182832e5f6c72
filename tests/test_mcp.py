"""The MCP server in-process (the SDK's own client on the app): the tools read what the API and pages read.

Tools run on the SDK's worker threads with their own database connections, so these tests commit
(transactional database) for those threads to see the rows.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from mcp.client import Client

from monitoring import drivers, mcp_server, monitor, tasks
from monitoring.account import sync_activity
from monitoring.mcp_server import app
from monitoring.models import AgentTask, Alert, AlertEvent, ApiKey, AuditEntry, Level
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "mcp-read-token"
TOOLS = {"get_status", "get_history", "get_spend", "list_alerts", "acknowledge_alert", "snooze_alert", "explain_spike",
         "recommend_models", "list_tasks", "claim_task", "complete_task", "dismiss_task"}  # fmt: skip


def run_async(make_coroutine):
    """asyncio.run on a thread of its own: Playwright's sync API may have left a loop running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def call(tool: str, arguments: dict | None = None):
    async def go():
        async with Client(app) as client:
            return await client.call_tool(tool, arguments or {})

    return run_async(go)


def answer(tool: str, arguments: dict | None = None) -> dict:
    result = call(tool, arguments)
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


def error(tool: str, arguments: dict | None = None) -> str:
    result = call(tool, arguments)
    assert result.is_error, result.content[0].text
    text = result.content[0].text
    assert "Traceback" not in text and 'File "' not in text
    return text


@pytest.fixture
def checked(sim, settings):
    """Two real checks of the production key a day apart ($10 spent of a $100 cap): a burn rate, days left."""
    settings.API_TOKEN = TOKEN
    settings.CREDITMON_TIME_ZONE = "UTC"
    now = timezone.now()
    sim.set_key(PROD_KEY, usage=70.0, limit=100.0, limit_remaining=30.0)
    monitor.check_all(now=now - timedelta(days=1))
    sim.set_key(PROD_KEY, usage=80.0, limit=100.0, limit_remaining=20.0)
    monitor.check_all(now=now)
    return ApiKey.objects.get(is_primary=True)


@pytest.fixture
def open_alert(checked):
    return Alert.objects.create(key=checked, condition=Alert.BALANCE, level=Level.WARNING, message="Credits low: $8.00")


def api(client, path: str) -> dict:
    response = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    return response.json()


def test_it_lists_every_tool_with_a_description_an_agent_can_act_on():
    async def go():
        async with Client(app) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in run_async(go)}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description or "") > 60, tool.name
    # The request context is injected by the SDK, never asked of the agent.
    assert set(tools["acknowledge_alert"].input_schema["properties"]) == {"alert_id", "note"}
    assert tools["get_spend"].input_schema["properties"]["by"]["enum"] == ["model", "key", "day", "workspace"]


def test_get_status_is_the_object_the_api_serves(checked, client):
    tool = answer("get_status")
    served = api(client, "/api/status/")
    assert tool["keys"][0]["days_left"] == 2.0  # $20 left at $10/day
    # Built a moment apart: the build time and the dates counted from it differ by that moment only.
    stamps = [datetime.fromisoformat(d["generated_at"]) for d in (tool, served)]
    ends = [datetime.fromisoformat(d["keys"][0]["exhaustion_date"]) for d in (tool, served)]
    assert abs((ends[1] - ends[0]) - (stamps[1] - stamps[0])) < timedelta(seconds=1)
    for document in (tool, served):
        document.pop("generated_at")
        document["keys"][0].pop("exhaustion_date")
        for limit in document["keys"][0]["limits"]:  # a layer's block time is counted from the build time too
            limit.pop("blocks_at")
    assert tool == served


def test_get_status_pages_and_filters_as_the_api_does(checked, client):
    critical = answer("get_status", {"level": "critical"})
    assert critical["keys"] == [] and critical["page"]["level"] == "critical" and critical["counts"] == {"WARNING": 1}
    assert [k["key"] for k in answer("get_status", {"level": "warning"})["keys"]] == [checked.display_name]
    assert "page 2 is past the last page (1)" in error("get_status", {"page": 2})


def test_get_history_is_the_object_the_api_serves(checked, client):
    tool = answer("get_history", {"days": 7})
    served = api(client, "/api/history/?days=7")
    assert [len(k["points"]) for k in tool["keys"]] == [2]
    assert tool["resolution"] == served["resolution"] == "raw"
    assert tool["keys"] == served["keys"]


def test_get_history_names_a_key_by_name_hash_or_id_and_lists_them_when_unknown(checked, sim, settings):
    settings.OPENROUTER_API_KEYS = DEV_KEY
    monitor.check_all()
    checked.name = "Production Key"  # both simulated keys are labelled alike: a name tells them apart
    checked.save()
    assert len(answer("get_history", {"days": 7})["keys"]) == 2
    for name in (checked.display_name, checked.hash[:12], str(checked.pk)):
        assert [k["key"] for k in answer("get_history", {"days": 7, "key": name})["keys"]] == [checked.display_name]
    refused = error("get_history", {"days": 7, "key": "nobody"})
    assert "No key named 'nobody'" in refused and checked.hash[:12] in refused


def test_get_history_refuses_a_range_in_the_apis_words(checked):
    assert "days must be more than 0 and at most 3660" in error("get_history", {"days": 99999})


def test_get_spend_by_model_and_by_day_match_the_spend_export(checked, settings, sim, client, django_user_model):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    client.force_login(django_user_model.objects.create_user("viewer", password="x" * 16))
    sync_activity(timezone.now(), backfill=True)
    by_model = answer("get_spend", {"days": 7, "by": "model"})
    assert by_model["source"] == "activity" and by_model["rows"]
    export = client.get(f"/export/spend-by-model.csv?start={by_model['from']}&end={by_model['to']}")
    assert export.status_code == 200
    exported = defaultdict(float)
    for row in csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())):
        exported[row["model"]] += float(row["usage_usd"])
    assert {row["model"]: pytest.approx(row["spend"], abs=0.02) for row in by_model["rows"]} == dict(exported)
    by_day = answer("get_spend", {"days": 7, "by": "day"})
    assert len(by_day["rows"]) == 7
    assert sum(row["spend"] for row in by_day["rows"]) == pytest.approx(sum(exported.values()), abs=0.05)


def test_get_spend_by_key_falls_back_to_the_checks_without_a_management_key(checked):
    spend = answer("get_spend", {"days": 7, "by": "key"})
    assert spend["source"] == "checks"
    assert spend["rows"][0]["key"] == checked.display_name
    assert spend["rows"][0]["spend"] == pytest.approx(10.0)


def test_get_spend_by_workspace_sums_the_stored_completed_days(checked):
    from monitoring.models import Workspace, WorkspaceSpend

    now = timezone.now()
    today = now.astimezone(UTC).date()
    Workspace.objects.create(workspace_id="ws-research", name="Research", last_seen=now)
    for back, default, research in ((1, 3.0, 1.0), (2, 2.0, 0.5), (9, 50.0, 50.0)):  # the 9th day is outside
        for ws, usage in (("ws-default", default), ("ws-research", research)):
            day = today - timedelta(days=back)
            WorkspaceSpend.objects.create(date=day, workspace_id=ws, usage=usage, fetched_at=now)
    spend = answer("get_spend", {"days": 7, "by": "workspace"})
    assert [(r["workspace"], r["spend"]) for r in spend["rows"]] == [("ws-default", 5.0), ("Research", 1.5)]
    assert spend["source"] == "activity" and spend["rows"][0]["share_percent"] == pytest.approx(76.9)
    assert spend["rows"][0]["requests"] == 0  # the same rows as Financial's Spend by workspace


def test_get_spend_refuses_a_bad_range(checked):
    assert "days must be between 1 and 3660" in error("get_spend", {"days": 0})
    assert "by" in error("get_spend", {"days": 7, "by": "team"})


def test_list_alerts_shows_the_open_ones_with_their_ids(open_alert):
    found = answer("list_alerts")
    assert [a["id"] for a in found["alerts"]] == [open_alert.pk]
    assert found["alerts"][0]["key"] == open_alert.key.display_name
    assert found["alerts"][0]["level"] == "WARNING"
    assert answer("list_alerts", {"state": "resolved"})["alerts"] == []


def test_acknowledge_alert_is_recorded_as_done_by_the_agent_with_its_note(open_alert, client, django_user_model):
    done = answer("acknowledge_alert", {"alert_id": open_alert.pk, "note": "topping up now"})
    assert done["result"] == "acknowledged"
    open_alert.refresh_from_db()
    assert open_alert.acknowledged_by == mcp_server.STDIO_ACTOR
    event = AlertEvent.objects.get(alert=open_alert, kind=AlertEvent.ACKNOWLEDGED)
    assert event.user == mcp_server.STDIO_ACTOR and "topping up now" in event.message
    client.force_login(django_user_model.objects.create_superuser("ops", password="x" * 16))
    assert "topping up now" in client.get("/alerts/").text  # the Alerts page's history shows it
    again = answer("acknowledge_alert", {"alert_id": open_alert.pk})
    assert again["result"].startswith("already acknowledged by agent")


def test_snooze_alert_silences_it_for_the_hours_given(open_alert):
    before = timezone.now()
    answer("snooze_alert", {"alert_id": open_alert.pk, "hours": 8, "note": "waiting for finance"})
    open_alert.refresh_from_db()
    assert open_alert.snoozed_by == mcp_server.STDIO_ACTOR
    assert timedelta(hours=7.99) < open_alert.snoozed_until - before < timedelta(hours=8.01)
    assert "hours must be more than 0" in error("snooze_alert", {"alert_id": open_alert.pk, "hours": 0})


def test_acting_on_a_missing_or_resolved_alert_is_a_sentence(open_alert):
    assert "No alert with id 999999" in error("acknowledge_alert", {"alert_id": 999999})
    Alert.objects.filter(pk=open_alert.pk).update(resolved_at=timezone.now())
    assert "already resolved" in error("snooze_alert", {"alert_id": open_alert.pk, "hours": 1})
    assert not AlertEvent.objects.filter(alert=open_alert).exists()


def test_the_resources_are_the_status_and_the_readmes_levels(checked):
    async def go():
        async with Client(app) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            levels = await client.read_resource("creditmon://levels")
            current = await client.read_resource("creditmon://status")
            prompt = await client.get_prompt("review_spend", {"days": "7"})
            return listed, levels.contents[0].text, current.contents[0].text, prompt

    listed, levels, current, prompt = run_async(go)
    assert listed == {"creditmon://status", "creditmon://levels"}
    assert levels == mcp_server.levels_text()
    for word in ("OK", "WARNING", "CRITICAL", "UNKNOWN"):
        assert f"**{word}**" in levels
    assert json.loads(current)["level"] == answer("get_status")["level"]
    text = prompt.messages[0].content.text
    assert "get_spend(days=7, by='model')" in text and "get_status" in text


def test_no_tool_answer_carries_an_api_key(open_alert, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    answers = [
        call("get_status"),
        call("get_history", {"days": 2}),
        call("get_spend", {"days": 7, "by": "key"}),
        call("list_alerts", {"state": "all"}),
        call("acknowledge_alert", {"alert_id": open_alert.pk}),
    ]
    for result in answers:
        text = result.content[0].text
        assert PROD_KEY not in text and MANAGEMENT_KEY not in text


# --- spikes and agent tasks ----------------------------------------------------------------------------


@pytest.fixture
def low_balance_task(sim, settings):
    """A real monitoring run on a key with $4.50 left: the balance alert opens, and with it a top_up task."""
    settings.FORECAST_WARNING_DAYS = settings.FORECAST_CRITICAL_DAYS = 0
    settings.SPIKE_MIN_USD = 1e9
    settings.AGENT_WEBHOOK_URL = ""
    settings.API_TOKEN, settings.API_OPERATOR_TOKEN = TOKEN, "mcp-operator-token"
    sim.set_key(PROD_KEY, limit=100.0, usage=95.5, limit_remaining=None)
    tasks.monitor_job(now=timezone.now())
    return AgentTask.objects.get(alert__condition=Alert.BALANCE)


def test_an_agent_lists_claims_and_completes_a_top_up_task(low_balance_task, client):
    listed = answer("list_tasks")
    assert [t["id"] for t in listed["tasks"]] == [low_balance_task.pk]
    task = listed["tasks"][0]
    assert task["schema"] == "creditmon.task/v1" and task["kind"] == "top_up" and task["state"] == "open"
    assert "Balance: $4.50 remaining" in task["body"]

    claimed = answer("claim_task", {"task_id": task["id"], "agent": "budget-bot"})
    assert claimed["task"]["state"] == "claimed" and claimed["task"]["claimed_by"] == "budget-bot"
    assert "claimed by budget-bot" in error("claim_task", {"task_id": task["id"], "agent": "other-bot"})

    done = answer("complete_task", {"task_id": task["id"], "note": "topped up $50"})
    assert done["task"]["state"] == "done" and done["task"]["note"] == "topped up $50"
    served = client.get("/api/tasks/?state=done", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert [(t["id"], t["state"]) for t in served["tasks"]] == [(task["id"], "done")]
    assert "already done" in error("dismiss_task", {"task_id": task["id"], "note": "never mind"})
    assert answer("list_tasks")["tasks"] == []
    trail = AuditEntry.objects.order_by("created", "pk").values_list("actor", "action", "detail")
    assert list(trail) == [(mcp_server.STDIO_ACTOR, "task_claim", "budget-bot"),
                           (mcp_server.STDIO_ACTOR, "task_complete", "topped up $50")]  # fmt: skip


def test_dismissing_an_unknown_task_is_a_sentence(low_balance_task):
    assert "No agent task 999999" in error("dismiss_task", {"task_id": 999999, "note": "x"})
    dismissed = answer("dismiss_task", {"task_id": low_balance_task.pk, "note": "expected: the top-up is booked"})
    assert dismissed["task"]["state"] == "dismissed"
    assert [t["id"] for t in answer("list_tasks", {"state": "dismissed"})["tasks"]] == [low_balance_task.pk]


def test_explain_spike_is_the_explanation_the_alert_carries(checked):
    now = timezone.now()
    explained = answer("explain_spike", {"key": checked.display_name})
    direct = drivers.explain_spike(checked, now)
    assert explained["key"] == checked.display_name and explained["text"]
    assert explained["factors"] == direct["factors"] and explained["unknown"] == direct["unknown"]
    assert "No key named 'nobody'" in error("explain_spike", {"key": "nobody"})
