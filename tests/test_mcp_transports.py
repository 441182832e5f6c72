"""The MCP server over its real transports: `manage.py mcpserver` on stdio, and /mcp on a real gunicorn with the
uvicorn worker (creditmon.asgi), each a subprocess on the test database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO
from pathlib import Path

import httpx2
import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from monitoring import mcp_server, monitor
from monitoring.models import Alert, AlertEvent, ApiKey, Level
from monitoring.simulator import PROD_KEY

ROOT = Path(__file__).resolve().parents[1]
READ_TOKEN = "mcp-viewer-token-for-tests"
OPERATOR_TOKEN = "mcp-operator-token-for-tests"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def run_async(make_coroutine):
    """asyncio.run on a thread of its own: Playwright's sync API may have left a loop running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def database_url() -> str:
    """The test database, for a process outside this one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def checked(sim, settings, tmp_path):
    """Two real checks a day apart ($10/day, $20 left of a $100 cap), and the environment of a process that sees
    the same database and simulator."""
    now = timezone.now()
    sim.set_key(PROD_KEY, usage=70.0, limit=100.0, limit_remaining=30.0)
    monitor.check_all(now=now - timedelta(days=1))
    sim.set_key(PROD_KEY, usage=80.0, limit=100.0, limit_remaining=20.0)
    monitor.check_all(now=now)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OPENROUTER_BASE_URL": sim.url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_API_KEYS": "",
        "OPENROUTER_MANAGEMENT_KEY": "",
        "OPENROUTER_CREDIT_THRESHOLD": str(settings.OPENROUTER_CREDIT_THRESHOLD),
        "NOTIFY_URLS": "",
        "HEARTBEAT_URL": "",
        "CREDITMON_DEMO": "False",
        "CREDITMON_LOG_DIR": str(tmp_path),
    }
    return env


def levels_and_days(document: dict) -> dict:
    return {k["key"]: (k["level"], k["days_left"]) for k in document["keys"]}


# --- stdio -------------------------------------------------------------------------------------------


def test_the_sdks_stdio_client_lists_the_tools_and_reads_what_checkcredits_json_prints(checked):
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("checkcredits", "--json", stdout=out, stderr=StringIO())
    printed = json.loads(out.getvalue())
    assert exited.value.code == 1 and printed["status"] == "WARNING"  # 2 days left: the forecast warns

    async def session():
        params = StdioServerParameters(command=sys.executable, args=["manage.py", "mcpserver"], env=checked, cwd=ROOT)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = [tool.name for tool in (await client.list_tools()).tools]
            result = await client.call_tool("get_status", {})
            return tools, result

    tools, result = run_async(session)
    assert set(tools) == {
        "get_status", "get_history", "get_spend", "list_alerts", "acknowledge_alert", "snooze_alert",
        "explain_spike", "recommend_models", "list_tasks", "claim_task", "complete_task", "dismiss_task",
    }  # fmt: skip
    assert not result.is_error, result.content[0].text
    served = json.loads(result.content[0].text)
    assert served["level"] == printed["status"]
    assert levels_and_days(served) == levels_and_days(printed)
    assert list(levels_and_days(served).values()) == [("WARNING", 2.0)]


INITIALIZE = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]  # fmt: skip


def pipe(env: dict, messages: list[dict]) -> tuple[list[str], str, str]:
    """`manage.py mcpserver` fed these messages one at a time: (a stdout line per request, the rest of stdout,
    stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "mcpserver"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    replies = []
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                replies.append(proc.stdout.readline())
        proc.stdin.close()
        rest, stderr = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return replies, rest, stderr


def test_stdout_carries_nothing_but_protocol_while_the_logs_go_to_stderr(checked):
    alert = Alert.objects.create(
        key=ApiKey.objects.get(is_primary=True), condition=Alert.BALANCE, level=Level.WARNING, message="Credits low"
    )
    messages = [
        *INITIALIZE,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "acknowledge_alert", "arguments": {"alert_id": alert.pk, "note": "on it"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_spend", "arguments": {"days": 0}}},
    ]  # fmt: skip
    env = {**checked, "CREDITMON_LOG_LEVEL": "DEBUG", "OPENROUTER_API_KEY": "", "PYTHONWARNINGS": "always"}
    replies, rest, stderr = pipe(env, messages)
    assert rest == ""
    decoded = [json.loads(line) for line in replies]
    assert [d["id"] for d in decoded] == [1, 2, 3] and all(d["jsonrpc"] == "2.0" for d in decoded)
    assert decoded[1]["result"]["isError"] is False
    refused = decoded[2]["result"]
    assert refused["isError"] is True and "days must be between" in refused["content"][0]["text"]
    assert "Acknowledged by agent (mcp stdio)" in stderr  # the log line was written, to stderr
    assert AlertEvent.objects.get(alert=alert).user == mcp_server.STDIO_ACTOR


def test_a_database_never_migrated_is_a_sentence_naming_migrate(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "CREDITMON_LOG_DIR": str(tmp_path)}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_status", "arguments": {}}}
    replies, rest, _ = pipe(env, [*INITIALIZE, call])
    result = json.loads(replies[1])["result"]
    assert result["isError"] is True
    assert "run `python manage.py migrate`" in result["content"][0]["text"]
    assert "Traceback" not in result["content"][0]["text"] and rest == ""


# --- streamable HTTP at /mcp on the real web process -------------------------------------------------


def start_web(env: dict, tmp_path: Path) -> tuple[subprocess.Popen, str | None, Path]:
    """gunicorn with the uvicorn worker on a free port; the process, its base URL (None if it stopped), its log."""
    log = tmp_path / "web.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "creditmon.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
         "--workers", "1", "--bind", "127.0.0.1:0", "--no-control-socket", "--timeout", "30"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        if (found := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)) and "startup complete" in text:
            return proc, found.group(1), log
        time.sleep(0.2)
    return proc, None, log


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def over_http(url: str, token: str, calls: list[tuple[str, dict]]):
    async def session():
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20) as http,
            streamable_http_client(url, http_client=http) as streams,
            ClientSession(streams[0], streams[1]) as client,
        ):
            await client.initialize()
            tools = [tool.name for tool in (await client.list_tools()).tools]
            return tools, [await client.call_tool(name, arguments) for name, arguments in calls]

    return run_async(session)


@pytest.fixture
def web(checked, tmp_path):
    env = {
        **checked,
        "API_TOKEN": READ_TOKEN,
        "API_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "a-secret-for-the-mcp-transport-tests-0123456789",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    proc, base, log = start_web(env, tmp_path)
    try:
        assert base, log.read_text()
        yield base, log
    finally:
        stop(proc)


def test_mcp_over_http_refuses_requests_without_the_token_or_with_a_wrong_one(web):
    base, _ = web
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers, said in (({}, "send Authorization: Bearer"), ({"Authorization": "Bearer nope"}, "invalid token")):
        for path in ("/mcp", "/mcp/"):
            refused = requests.post(base + path, json=hello, headers=headers, timeout=20)
            assert refused.status_code == 401, refused.text
            assert said in refused.json()["error"]
            assert refused.headers["Cache-Control"] == "private, no-store"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    foreign = {"Authorization": f"Bearer {READ_TOKEN}", "Host": "creditmon.evil.example"}
    refused = requests.post(base + "/mcp", json=hello, headers=foreign, timeout=20)
    assert refused.status_code == 400 and "DJANGO_ALLOWED_HOSTS" in refused.json()["error"]
    assert requests.get(base + "/healthz", timeout=20).json() == {"status": "ok"}  # Django serves the rest


def test_mcp_without_any_token_is_off_says_how_to_turn_it_on_and_the_pages_still_serve(checked, tmp_path):
    env = {
        **checked,
        "API_TOKEN": "",
        "API_OPERATOR_TOKEN": "",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "a-secret-for-the-mcp-transport-tests-0123456789",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    proc, base, log = start_web(env, tmp_path)  # the gate alone: the SDK is not imported (bench/memory.py)
    try:
        assert base, log.read_text()
        hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for headers in ({}, {"Authorization": "Bearer anything"}):
            refused = requests.post(base + "/mcp", json=hello, headers=headers, timeout=20)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"].startswith("/mcp is off: set API_TOKEN")
            assert refused.headers["Cache-Control"] == "private, no-store"
        assert requests.get(base + "/healthz", timeout=20).json() == {"status": "ok"}
    finally:
        stop(proc)
    assert "Application startup complete" in log.read_text()  # the lifespan is answered without the SDK


def test_mcp_over_http_reads_with_the_token_and_acts_only_with_the_operators(web, client):
    base, log = web
    alert = Alert.objects.create(
        key=ApiKey.objects.get(is_primary=True), condition=Alert.BALANCE, level=Level.WARNING, message="Credits low"
    )
    acknowledge = ("acknowledge_alert", {"alert_id": alert.pk, "note": "topping up"})
    claim = ("claim_task", {"task_id": 1, "agent": "bot"})
    tools, (status, refused, refused_claim) = over_http(
        base + "/mcp", READ_TOKEN, [("get_status", {}), acknowledge, claim]
    )
    assert {"acknowledge_alert", "claim_task", "complete_task", "dismiss_task"} <= set(tools)
    assert not status.is_error and json.loads(status.content[0].text)["keys"][0]["days_left"] == 2.0
    assert refused.is_error and "operator token" in refused.content[0].text
    assert refused_claim.is_error and "operator token" in refused_claim.content[0].text
    alert.refresh_from_db()
    assert alert.acknowledged_at is None and not AlertEvent.objects.filter(alert=alert).exists()

    _, (done,) = over_http(base + "/mcp/", OPERATOR_TOKEN, [acknowledge])
    assert not done.is_error, done.content[0].text
    alert.refresh_from_db()
    assert alert.acknowledged_by == mcp_server.HTTP_ACTOR

    answer = requests.post(
        base + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {READ_TOKEN}", "Accept": "application/json, text/event-stream",
                 "MCP-Protocol-Version": "2025-06-18"},
        timeout=20,
    )  # fmt: skip
    assert answer.headers["Cache-Control"] == "private, no-store"
    for text in (status.content[0].text, done.content[0].text, log.read_text()):
        assert PROD_KEY not in text and OPERATOR_TOKEN not in text and READ_TOKEN not in text
