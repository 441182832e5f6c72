"""A figure from a failed fetch says its age: when /credits fails, the account balance read before is shown "as of"
its time on the CLI report, the JSON, the API and the pages, never as if it were current."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from monitoring.models import CreditLog
from monitoring.simulator import MANAGEMENT_KEY


def checkcredits(*args: str) -> str:
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("checkcredits", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def credits_failed(sim, settings):
    """One check that read the account ($69.50), then one whose /credits answered 502."""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.OPENROUTER_MAX_RETRIES = 0
    checkcredits()
    first = CreditLog.objects.filter(account_balance__isnull=False).latest("timestamp")
    sim.set_failure("http502", count=1, path="/credits")
    return first


@pytest.mark.django_db
def test_the_report_and_json_give_the_last_balance_with_its_age(credits_failed, sim):
    when = f"{credits_failed.timestamp:%Y-%m-%d %H:%M} UTC"
    report = checkcredits()
    (line,) = [line for line in report.splitlines() if line.startswith("Account:")]
    assert "account balance unavailable: OpenRouter API error (502)" in line
    assert line.endswith(f"last known $69.50 as of {when}"), line
    sim.set_failure("http502", count=1, path="/credits")
    account = json.loads(checkcredits("--json"))["account"]
    assert account["known"] is False and account["stale"] is True and account["balance"] is None
    assert account["last_known_balance"] == 69.5 and account["last_known_at"] == credits_failed.timestamp.isoformat()


@pytest.mark.django_db
def test_the_pages_and_the_api_give_it_with_its_age(credits_failed, client, django_user_model):
    checkcredits()
    client.force_login(django_user_model.objects.create_user("vera", password="x" * 16))
    when = f"{credits_failed.timestamp:%Y-%m-%d %H:%M}"
    health = client.get("/health/").text
    stale = re.search(r'id="account-stale">(.*?)</span>', health, re.S).group(1)
    assert "last known $69.50 as of " + when in stale and "502" in stale
    financial = client.get("/financial/").text
    as_of = re.search(r'id="account-as-of">(.*?)</span>', financial, re.S).group(1)
    assert "as of" in as_of and when in as_of and "502" in as_of
    api = client.get("/api/status/").json()["account"]
    assert api["stale"] is True and api["last_known_balance"] == 69.5


@pytest.mark.django_db
def test_a_current_balance_is_not_marked_stale(sim, settings, client, django_user_model):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    account = json.loads(checkcredits("--json"))["account"]
    assert account["known"] is True and account["stale"] is False and account["balance"] == 69.5
    client.force_login(django_user_model.objects.create_user("vera", password="x" * 16))
    assert 'id="account-stale"' not in client.get("/health/").text
    assert 'id="account-as-of"' not in client.get("/financial/").text
    assert "as of" not in [line for line in checkcredits().splitlines() if line.startswith("Account:")][0]
