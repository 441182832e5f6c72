"""Playwright against the system Chromium, a logged-in page on the live server, screenshots and console checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.people import make_operator

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct horse battery staple"
# Everything that needs sideways scrolling: the document, any scrolling box, anything sticking out of its card.
OVERFLOW_JS = """() => {
  const bad = [];
  const name = (el) => (el.parentElement && el.parentElement.id ? el.parentElement.id + ' > ' : '') +
    el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth) bad.push('document is ' + root.scrollWidth + ' px wide');
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
      bad.push('scrolls sideways: ' + name(el));
    }
  }
  for (const box of document.querySelectorAll('.panel, .card, .tile, .state, .verdict, .alert-row, .login')) {
    const edge = box.getBoundingClientRect();
    for (const el of box.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width > 1 && (r.right > edge.right + 1 || r.left < edge.left - 1)) {
        bad.push(name(el) + ' (' + Math.round(r.left) + '..' + Math.round(r.right) + ') sticks out of ' + name(box) +
                 ' (' + Math.round(edge.left) + '..' + Math.round(edge.right) + ')');
        break;
      }
    }
  }
  return bad;
}"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """The system Chromium: `playwright install` cannot download its own browser here."""
    executable = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not executable:
        pytest.fail("No Chromium found: apt-get install -y chromium, or set CHROMIUM_PATH")
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


@pytest.fixture
def console_errors(page):
    """Every console error and uncaught exception (a CSP violation is a console error)."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@pytest.fixture
def quiet(settings):
    """No real OpenRouter: checks are not made unless a test uses `sim`; the default thresholds."""
    settings.OPENROUTER_API_KEY = "sk-or-v1-browser-test-key-0000"
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.CREDITMON_TIME_ZONE = "UTC"
    settings.MONTHLY_BUDGET = 0.0
    settings.NOTIFY_URLS = ""
    settings.FORECAST_CRITICAL_DAYS = 2
    settings.FORECAST_WARNING_DAYS = 7
    return settings


def submit_login(page, live_server, username: str) -> None:
    """Fill the login form already open in `page` and wait for System Health."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/health/")


def opener(page, live_server):
    """A function that opens a path on the live server and returns the page."""

    def visit(path: str):
        page.goto(f"{live_server.url}{path}")
        return page

    return visit


@pytest.fixture
def login(page, live_server, django_user_model, console_errors):
    """Log in as an operator through the login form; returns a function that opens a path on the live server."""
    make_operator(django_user_model.objects.create_user("alice", password=PASSWORD))
    page.goto(f"{live_server.url}/accounts/login/")
    submit_login(page, live_server, "alice")
    return opener(page, live_server)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def points(page, canvas_id: str, dataset: int = 0) -> int:
    """How many points the chart on that canvas drew in one dataset (fails if no chart was made)."""
    return page.evaluate(
        "([id, i]) => Chart.getChart(document.querySelector('#' + id)).data.datasets[i].data.length",
        [canvas_id, dataset],
    )


def series(page, canvas_id: str) -> list[str]:
    return page.evaluate(
        "(id) => Chart.getChart(document.querySelector('#' + id)).data.datasets.map(d => d.label)", canvas_id
    )
