"""System Health in a real Chromium: each key's budget layers as bars, the one that stops the key first marked."""

from __future__ import annotations

import pytest

from monitoring import monitor
from tests.test_budgets import NOON, clock, guardrail_world, world  # noqa: F401 (fixtures: one clock, one world)

from .conftest import OVERFLOW_JS, screenshot

pytestmark = pytest.mark.browser


def test_the_guardrail_that_binds_is_marked_among_the_key_layers(world, clock, login, page, console_errors):  # noqa: F811
    guardrail_world(world, clock)
    monitor.check_all(now=NOON)
    login("/health/")
    layers = page.locator("article.key-card li.limit")
    assert [layers.nth(i).get_attribute("data-scope") for i in range(layers.count())] == ["key_limit", "api_key"]
    binding = page.locator("article.key-card li.limit.binding")
    assert binding.count() == 1 and binding.get_attribute("data-scope") == "api_key"
    assert "binds first" in binding.inner_text().lower() and "blocks at 20:00 UTC" in binding.inner_text()
    assert binding.locator("progress").get_attribute("value") == "60"  # $6 of the $10 spent
    assert "level-critical" in page.locator("article.key-card").first.get_attribute("class")
    assert page.locator('[data-figure="days-left"]').first.inner_text().startswith("0.3 days")
    assert page.evaluate(OVERFLOW_JS) == []
    assert console_errors == []
    screenshot(page, "health-budget-layers")
