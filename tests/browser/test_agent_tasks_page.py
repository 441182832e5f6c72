"""Agent tasks on the Alerts page in a real headless Chromium: beside their alert, with state and claimer."""

from __future__ import annotations

import pytest

from monitoring import agent_tasks, tasks
from monitoring.models import AgentTask

from .conftest import OVERFLOW_JS, screenshot

pytestmark = pytest.mark.browser


def test_a_claimed_task_shows_beside_its_alert_and_in_the_task_table(login, sim, settings, console_errors):
    settings.FORECAST_WARNING_DAYS = 0
    settings.FORECAST_CRITICAL_DAYS = 0
    sim.set_scenario("low")  # $4.50 left under a $10 threshold: a balance alert and its top_up task
    tasks.monitor_job()
    task = AgentTask.objects.get()
    agent_tasks.claim(task.pk, "budget-bot", by="ops")
    page = login("/alerts/")
    row = page.locator(f"#alert-{task.alert_id}")
    line = row.locator(".agent-task").inner_text()
    assert f"Agent task #{task.pk}" in line and "Top up" in line and "CLAIMED" in line.upper()
    assert row.locator(".task-claimed-by").inner_text() == "budget-bot"
    cells = page.locator(f"#task-{task.pk} td").all_inner_texts()
    assert cells[1:3] == ["Top up", "CLAIMED"] and cells[4] == "budget-bot"
    row.locator(".agent-task a").click()
    assert page.url.endswith(f"#task-{task.pk}")
    assert page.evaluate(OVERFLOW_JS) == []
    screenshot(page, "alerts-agent-task")
    assert console_errors == []
