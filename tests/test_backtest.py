"""`manage.py backtest TRACE.csv --json` on every shipped trace meets its target; bad traces get one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitoring.backtest import TraceError, parse_trace
from monitoring.simulator import MODELS

# The backtest swaps in its own in-memory SQLite: the PostgreSQL pass would repeat the identical run.
# Each replays weeks of runs in a subprocess (30-60 s): `slow` and `django_db` start them first (pytest-django
# runs tests without the database last, where these would be the suite's tail), overlapped by the rest.
pytestmark = [pytest.mark.engine_independent, pytest.mark.slow, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "bench" / "traces"
RUNAWAY_STARTS = datetime.fromisoformat("2026-11-08T13:00:00+00:00")  # see bench/traces/make_traces.py


def backtest(name: str) -> dict:
    done = subprocess.run(
        [sys.executable, "manage.py", "backtest", str(TRACES / f"{name}.csv"), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def told(result: dict) -> list[dict]:
    """Notifications besides reminders."""
    return [n for n in result["notifications"] if n["kind"] != "reminder"]


@pytest.mark.parametrize("name", ["steady", "weekday", "creep", "topup"])
def test_an_ordinary_drain_is_told_a_day_ahead_in_at_most_three_notifications(name):
    result = backtest(name)
    assert result["exhausted_at"] is not None
    assert result["lead_hours"] >= 24, result["notifications"][:3]
    assert 1 <= len(told(result)) <= 3, told(result)
    assert result["received"] == len(result["notifications"])  # every one reached the receiver
    first = told(result)[0]
    assert first["condition"] == "forecast" and "may run out as early as" in first["message"]


@pytest.mark.parametrize(("name", "hours_left"), [("runaway", 17), ("fast_runaway", 3.5)])
def test_a_runaway_is_told_within_its_first_hour_naming_key_and_model(name, hours_left):
    result = backtest(name)
    first = told(result)[0]
    assert datetime.fromisoformat(first["at"]) - RUNAWAY_STARTS <= timedelta(hours=1)
    assert result["lead_hours"] >= hours_left
    assert (first["condition"], first["level"]) == ("runaway", "CRITICAL")
    assert "Production Key +$" in first["message"]
    assert any(model in first["message"] for model, *_ in MODELS), first["message"]
    assert len(told(result)) <= 3, told(result)
    assert result["checks"] < 400  # readings while the runaway lasts, not one per watch


def test_a_quiet_account_is_never_told_and_the_watch_adds_no_rows():
    result = backtest("quiet")
    assert result["exhausted_at"] is None
    assert result["notifications"] == []
    assert result["runs"]["monitoring.tasks.watch_job"] == 30 * 24 * 6
    assert result["checks"] == result["runs"]["monitoring.tasks.monitor_job"]  # the scheduled checks only


def test_a_daily_guardrail_is_told_before_it_blocks_on_every_day_it_blocks_and_never_floods():
    result = backtest("guardrail")
    assert result["exhausted_at"] is None  # the account holds plenty: only the guardrail stops the key
    blocked = [datetime.fromisoformat(at) for at in result["blocked_at"]]
    assert len(blocked) == 7
    layer = [n for n in result["notifications"] if n["condition"] == "budget_layer"]
    opened = [datetime.fromisoformat(n["at"]) for n in layer if n["kind"] == "opened"]
    for block in blocked:
        told_that_day = [at for at in opened if at.date() == block.date()]
        assert len(told_that_day) == 1 and told_that_day[0] < block, (block, told_that_day)
    assert all("guardrail gr_back" in n["message"] for n in layer if n["kind"] == "opened")
    assert len(layer) <= 2 * len(blocked)  # opened before the block, resolved at the reset: no more


HEADER = "timestamp,usage,limit,limit_remaining,total_credits,total_usage\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("time,usage\n", "the header must be exactly timestamp,usage,limit,limit_remaining,total_credits,total_usage"),
        (HEADER + "2026-11-02T00:00:00Z,1,,,,\n2026-11-02T00:20:00Z,2,,,,\n", "line 3: 0:20:00 after the previous"),
        (HEADER + "2026-11-02T00:00:00Z,1,,,,\n2026-11-02T00:10:00Z,x,,,,\n", "line 3: `usage` is not a number"),
        (HEADER + "2026-11-02T00:00:00Z,1,,,5,\n2026-11-02T00:10:00Z,2,,,5,\n", "line 2: give both total_credits"),
        (HEADER + "yesterday,1,,,,\n", "line 2: `timestamp` is not an ISO-8601 time"),
        (
            HEADER.strip()
            + ",budget_scope,budget_limit,budget_spend,budget_reset\n2026-11-02T00:00:00Z,1,,,,,team,10,1,daily\n",
            "line 2: `budget_scope` is not one of api_key",
        ),
    ],
)
def test_a_bad_trace_is_one_clear_line(text, error):
    with pytest.raises(TraceError) as caught:
        parse_trace(text.splitlines(keepends=True))
    assert str(caught.value).startswith(error)


def test_the_command_refuses_a_bad_trace_without_a_traceback(tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text("time,usage\n")
    done = subprocess.run(
        [sys.executable, "manage.py", "backtest", str(trace)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"CommandError: {trace}: the header must be exactly "
        "timestamp,usage,limit,limit_remaining,total_credits,total_usage"
    )
