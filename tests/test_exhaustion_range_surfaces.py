"""The exhaustion range, from real checks of a week of spend, on Financial, /api/status/ and checkcredits --verbose."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import outlook
from monitoring.models import ApiKey
from monitoring.simulator import DEV_KEY, PROD_KEY, Clock, Simulator
from monitoring.tasks import monitor_job

TOKEN = "range-token"


@pytest.fixture
def week_of_spend(settings):
    """Checks every 6 hours over 8 days of a key whose spend alternates $2 and $6 a day, up to today.

    The checks sit at 06:01, 12:01, 18:01 and 00:01 UTC (the last one today at 00:01), the rate changing
    at 18:01: each reading's spend counts on the day it is observed, so every completed day spends at
    one rate, whatever the time the test runs."""
    midnight = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    now = midnight + timedelta(minutes=1) - timedelta(hours=6 * 31) + timedelta(days=8)
    clock = Clock(now - timedelta(days=8))
    sim = Simulator("management", now=clock).start()
    sim.remove_key(DEV_KEY)
    sim.set_key(PROD_KEY, limit=100.0, usage=60.0, spend_per_day=2.0)
    settings.OPENROUTER_BASE_URL = sim.url
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.OPENROUTER_MAX_RETRIES = 0
    settings.NOTIFY_URLS = ""
    settings.HEARTBEAT_URL = ""
    settings.API_TOKEN = TOKEN
    for n in range(8 * 4):
        clock.at = now - timedelta(days=8) + timedelta(hours=6 * n)
        if n % 4 == 2:  # 18:01
            sim.set_key(PROD_KEY, spend_per_day=2.0 if (n // 4) % 2 == 0 else 6.0)
        monitor_job(now=clock.at)
    clock.at = None
    yield sim
    sim.stop()


@pytest.mark.django_db
def test_the_range_is_on_every_surface(week_of_spend, client, django_user_model):
    key = ApiKey.objects.get()
    spend = outlook.key_daily_spend(key, timezone.now())
    assert len(spend) >= 6 and {round(v) for v in spend.values()} == {2, 6}
    earliest, latest = outlook.key_range(key, 20.0, timezone.now())
    assert earliest < latest  # a spread of daily spend gives a range, not a date

    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("checkcredits", "--verbose", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("Runs Out Range:"))
    day = r"\d{4}-\d\d-\d\d"
    assert re.fullmatch(rf"Runs Out Range: {day} to {day} \(10th-90th percentile of daily spend\)", line)

    data = client.get("/api/status/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    found = data["keys"][0]["exhaustion_range"]
    assert found["percentiles"] == [10, 90]
    assert datetime.fromisoformat(found["earliest"]) < datetime.fromisoformat(found["latest"])
    point = datetime.fromisoformat(data["keys"][0]["exhaustion_date"])  # the range is around the point estimate
    assert datetime.fromisoformat(found["earliest"]) <= point <= datetime.fromisoformat(found["latest"])

    client.force_login(django_user_model.objects.create_user("ops", password="x" * 12))
    page = client.get("/financial/").content.decode()
    day = r"\w{3} \d{1,2} \w{3}"
    assert re.search(rf'id="fig-exhaustion-range">Range around that date: as early as {day}, as late as', page)
