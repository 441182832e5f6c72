"""Financial's "Model costs" in a real headless Chromium: the table and the what-if form, without inline script."""

from __future__ import annotations

import pytest
from django.utils import timezone

from monitoring import advisor, monitor
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY

from .conftest import OVERFLOW_JS, screenshot

pytestmark = pytest.mark.browser


def test_the_what_if_form_projects_a_swap(login, sim, settings, console_errors):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_key(PROD_KEY, activity_models=["openai/gpt-4.1"])
    sim.set_key(DEV_KEY, activity_models=["openai/gpt-4.1"])
    monitor.run_monitor(timezone.now())
    page = login("/financial/?range=30")
    table = page.locator("#model-costs-table")
    assert "openai/gpt-4.1" in table.inner_text()
    best = advisor.advice(timezone.now(), 30)["models"][0]["candidates"][1]
    page.select_option("#swap-select", f"openai/gpt-4.1|{best['model']}")
    page.get_by_role("button", name="Project").click()
    page.wait_for_selector("#what-if-table")
    found = advisor.what_if(timezone.now(), 30, "openai/gpt-4.1", best["model"])
    projected = page.locator("#what-if-table").inner_text()
    assert f"${found['swapped_burn_rate_per_day']:,.2f}/day" in projected
    assert page.locator("#swap-select").input_value() == f"openai/gpt-4.1|{best['model']}"
    assert page.evaluate(OVERFLOW_JS) == []
    screenshot(page, "financial-model-costs-what-if")
    assert console_errors == []
