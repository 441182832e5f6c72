"""The state at a glance in a real Chromium: tab title, favicon, brand dot, verdict, overdue worker,
axe-core, keyboard focus, phones at 390 px, and screenshots of every page in an OK and a CRITICAL state."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Schedule

from monitoring import alerts, status
from monitoring.models import CreditLog
from monitoring.schedule import SCHEDULE_NAME, TASK_FUNC
from tests.test_pages import make_key, seed

from .conftest import ARTIFACTS, OVERFLOW_JS, PASSWORD, opener, points, submit_login
from .test_dashboard import seed_activity

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "screenshots"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = [("health", "/health/"), ("financial", "/financial/"), ("alerts", "/alerts/")]
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

AXE_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
    .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
      v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '));
}"""


@pytest.fixture
def admin_page(page, live_server, django_user_model, console_errors):
    """Logged in as a superuser (the admin changelist is screenshot too); opens a path on the live server."""
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/accounts/login/")
    page.set_viewport_size(PHONE)
    assert page.evaluate(OVERFLOW_JS) == []
    page.add_script_tag(url=f"{live_server.url}/static/vendor/axe-core/axe.min.js")
    assert page.evaluate(AXE_JS) == [], "axe-core on the login page"
    page.set_viewport_size(DESKTOP)
    submit_login(page, live_server, "root")
    return opener(page, live_server)


def shoot(page, name: str, width: str, state: str = "") -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    suffix = f"-{state}" if state else ""
    page.screenshot(path=str(SHOTS / f"{name}-{width}{suffix}.png"), full_page=True)


def schedule_next_run(when) -> None:
    """The one monitoring schedule, due at `when` (the migration's row may be there already)."""
    Schedule.objects.filter(name=SCHEDULE_NAME).delete()
    Schedule.objects.create(
        name=SCHEDULE_NAME, func=TASK_FUNC, schedule_type="I", minutes=360, repeats=-1, next_run=when
    )


def evaluate_alerts(now):
    """The real alert rules on the newest check of each key (what the scheduled run does after checking)."""
    CreditLog.objects.recompute_spend_totals()
    alerts.evaluate(status.build(now), now)


def every_page(visit, state: str, axe: bool) -> None:
    """Each page at desktop and phone width: no sideways scrolling on a phone, axe-core clean, screenshots."""
    page = visit("/health/")
    for name, path in [*PAGES, ("admin-creditlog", "/admin/monitoring/creditlog/")]:
        page.set_viewport_size(DESKTOP)
        page = visit(path)
        if axe and not name.startswith("admin"):
            page.add_script_tag(url=page.url.split(path)[0] + "/static/vendor/axe-core/axe.min.js")
            assert page.evaluate(AXE_JS) == [], f"axe-core on {path}"
        shoot(page, name, "desktop", state)
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(150)  # the charts resize on the next frame
        if not name.startswith("admin"):
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
            assert page.evaluate(OVERFLOW_JS) == [], f"{path} at 390 px, the tables behind 'as a table' open"
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = false; })")
        shoot(page, name, "phone", state)
    page.set_viewport_size(DESKTOP)
    page.context.clear_cookies()  # logged out: the login page (it shows no state to strangers)
    page = visit("/accounts/login/")
    shoot(page, "login", "desktop", state)
    page.set_viewport_size(PHONE)
    shoot(page, "login", "phone", state)
    page.set_viewport_size(DESKTOP)


def test_a_key_at_one_and_a_half_days_is_critical_everywhere_and_a_dead_worker_is_named(
    admin_page, quiet, console_errors
):
    now = timezone.now()
    key = make_key("Production Key", limit=100.0)
    # $10/day (2.50 every 6 h) for a week, ending with $15.00 left: 1.5 days.
    seed(key, 29, usage=15.0, spend=2.5, end=now)
    seed(make_key("Dev Key", primary=False, limit=20.0), 8, usage=1.0, spend=0.05, limit=20.0, end=now)
    evaluate_alerts(now)
    schedule_next_run(now - timedelta(hours=3))  # no worker has run it for three hours

    page = admin_page("/health/")
    assert page.title() == "CRITICAL · System Health · creditmon"
    assert "brand-critical" in page.locator("#brand-dot").get_attribute("class")
    assert page.locator("link[rel=icon]").get_attribute("href").endswith("favicons/critical.svg")
    verdict = page.locator("#verdict").inner_text()
    assert "1 key critical, 1 key ok" in verdict and "1 open alert" in verdict
    assert page.locator("#verdict-alerts").get_attribute("href") == "/alerts/"
    assert page.locator("#top-up").get_attribute("href") == quiet.OPENROUTER_TOPUP_URL
    first = page.locator(".key-card").first
    assert "Production Key" in first.inner_text() and "CRITICAL" in first.inner_text()  # worst first
    assert "1.5 days" in first.inner_text()
    banner = page.locator("#check-overdue").inner_text().replace("\xa0", " ")
    assert "overdue" in banner and "3 hours" in banner and "python manage.py qcluster" in banner
    assert "overdue" in page.locator("#next-check").inner_text()

    page.keyboard.press("Tab")  # the skip link, then the brand: each shows where the focus is
    page.keyboard.press("Tab")
    focus = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.className, s.outlineStyle, s.outlineWidth]; }"
    )
    assert focus[0] == "brand" and focus[1] != "none" and focus[2] != "0px", focus

    page = admin_page("/alerts/")
    assert page.title().startswith("CRITICAL · Alerts")
    assert page.locator("#check-overdue").is_visible()  # every page says it
    every_page(admin_page, "critical", axe=True)
    assert console_errors == []


def test_an_ok_account_says_so_and_pages_fit_a_phone(admin_page, quiet, console_errors):
    now = timezone.now()
    prod, dev = make_key("Production Key", limit=100.0), make_key("Dev Key", primary=False, limit=20.0)
    seed(prod, 29, usage=10.0, spend=0.5, end=now)
    seed(dev, 29, usage=1.0, spend=0.05, limit=20.0, end=now)
    seed_activity([(prod, 2.0), (dev, 0.2)], days=10)  # spend by model and by key: their tables on a phone too
    evaluate_alerts(now)
    schedule_next_run(now + timedelta(hours=5))  # a worker keeps it on time
    page = admin_page("/health/")
    assert page.title() == "OK · System Health · creditmon"
    assert "brand-ok" in page.locator("#brand-dot").get_attribute("class")
    assert "2 keys ok" in page.locator("#verdict").inner_text()
    assert page.locator("#check-overdue").count() == 0
    page = admin_page("/financial/?range=7")
    assert points(page, "model-chart") == 7  # seven completed days, as the export of the same range
    assert points(page, "key-chart") == 7
    assert "Spend (USD/day)" in page.evaluate(
        "() => Chart.getChart(document.querySelector('#model-chart')).options.scales.y.title.text"
    )
    every_page(admin_page, "ok", axe=False)
    assert console_errors == []
