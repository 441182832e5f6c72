"""Small screens and long names: no sideways scroll at 1366 or 390 px with a 250-character key name, charts that
keep their axis titles and a readable plot on a phone, and an admin header that fits on a laptop."""

from __future__ import annotations

import pytest
from django.utils import timezone

from monitoring import demo
from monitoring.models import ApiKey

from .conftest import screenshot
from .test_dashboard import seed_activity

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
# 250 characters: words, then one unbroken run as a generated name would be.
LONG_NAME = ("Production key for the customer facing assistant in the EU region " * 2)[:130] + "x" * 120
MIN_PLOT_HEIGHT = 120  # px: below it a bar chart on a phone is a line of colour, not a chart

WIDTH_JS = "() => [document.documentElement.scrollWidth, window.innerWidth]"
# How many lines each part of the admin header takes: its contents' boxes, grouped by their vertical middle.
LINES_JS = """() => Object.fromEntries(['#site-name', '#user-tools', '.back-to-dashboard']
  .map((sel) => document.querySelector(sel)).filter(Boolean).map((el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const middles = Array.from(range.getClientRects()).filter((r) => r.width > 1 && r.height > 1)
      .map((r) => (r.top + r.bottom) / 2).sort((a, b) => a - b);
    let lines = 0, last = -Infinity;
    for (const m of middles) { if (m - last > 10) lines += 1; last = m; }
    return [el.id || el.className, lines];
  }))"""
# Each chart: its plot height, and every axis title that reaches past the canvas (drawn cut off: "Balance (U").
CHARTS_JS = """() => Array.from(document.querySelectorAll('canvas')).map((canvas) => {
  const chart = Chart.getChart(canvas);
  if (!chart) return null;
  const cut = [];
  for (const scale of Object.values(chart.scales)) {
    const title = scale.options.title;
    if (!title || !title.display) continue;
    const font = Chart.helpers.toFont(title.font);
    chart.ctx.save();
    chart.ctx.font = font.string;
    const width = chart.ctx.measureText(title.text).width;
    chart.ctx.restore();
    // The title is centred on its axis: it is cut when half of it reaches past an edge of the canvas.
    const middle = scale.isHorizontal() ? (scale.left + scale.right) / 2 : (scale.top + scale.bottom) / 2;
    const room = scale.isHorizontal() ? chart.width : chart.height;
    if (middle - width / 2 < 0 || middle + width / 2 > room) cut.push(title.text);
  }
  return {id: canvas.id, plot: Math.round(chart.chartArea.bottom - chart.chartArea.top), cut: cut};
}).filter(Boolean)"""


@pytest.fixture
def long_named(quiet):
    quiet.CREDITMON_DEMO = True
    demo.seed(timezone.now(), days=4)  # the page's layout, not the month: a few days of the real job
    prod = ApiKey.objects.get(is_primary=True)
    dev = ApiKey.objects.get(is_primary=False)
    seed_activity([(prod, 3.2), (dev, 0.4)], days=20)
    prod.name = LONG_NAME
    prod.save(update_fields=["name"])
    assert len(prod.name) == 250
    return prod


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366", "390"])
@pytest.mark.parametrize("path", ["/financial/", "/health/", "/alerts/"])
def test_a_250_character_key_name_needs_no_sideways_scroll(login, long_named, console_errors, viewport, path):
    page = login("/health/")
    page.set_viewport_size(viewport)
    page = login(path)
    page.wait_for_timeout(150)  # the charts resize on the next frame
    width, viewport_width = page.evaluate(WIDTH_JS)
    assert width <= viewport_width, f"{path} is {width} px wide at {viewport_width} px"
    shown = page.get_by_text(LONG_NAME[:40]).first
    assert shown.is_visible()  # wrapped, not hidden
    screenshot(page, f"long-name{path.strip('/')}-{viewport['width']}")
    assert console_errors == []


def test_charts_keep_their_axis_titles_and_a_readable_plot_on_a_phone(login, long_named, console_errors):
    page = login("/health/")
    page.set_viewport_size(PHONE)
    page = login("/financial/")
    page.wait_for_timeout(200)
    charts = page.evaluate(CHARTS_JS)
    assert {c["id"] for c in charts} >= {"spend-chart", "balance-chart", "account-chart", "model-chart"}
    for chart in charts:
        assert chart["cut"] == [], f"{chart['id']}: axis title cut off at 390 px"
        assert chart["plot"] >= MIN_PLOT_HEIGHT, f"{chart['id']}: plot only {chart['plot']} px tall at 390 px"
    screenshot(page, "financial-charts-390")
    assert console_errors == []


@pytest.mark.parametrize("demo", [False, True], ids=["own-key", "demo"])
def test_the_admin_says_what_can_be_changed_and_its_header_fits(page, live_server, django_user_model, settings, demo):
    settings.CREDITMON_DEMO = demo  # the demo adds its pill to the header
    django_user_model.objects.create_superuser("root", "root@example.com", "correct horse battery staple")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    text = page.locator("#content").inner_text()
    assert "(read-only)" not in text  # no blanket claim over models that can be changed
    read_only = page.locator(".read-only-model").all_inner_texts()
    assert {"API keys", "Credit log entries", "Alerts", "Deliveries"} <= set(read_only)
    assert "Users" not in read_only and "Groups" not in read_only  # these can be changed, and are not listed
    lines = page.evaluate(LINES_JS)
    assert all(count == 1 for count in lines.values()), f"the admin header wraps at 1366 px: {lines}"
    width, viewport_width = page.evaluate(WIDTH_JS)
    assert width <= viewport_width
    screenshot(page, f"admin-index-1366-{'demo' if demo else 'own-key'}")
