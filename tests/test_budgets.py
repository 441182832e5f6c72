"""Every limit that can stop a request: guardrails, member and workspace budgets, a budget 403, the free quota.

Each world is the simulated OpenRouter over real HTTP on one settable clock, which creditmon reads too (the
checks, the CLI, the pages and /metrics all ask `django.utils.timezone.now`), so "12:00" is 12:00 everywhere.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from openrouter import OpenRouter
from prometheus_client.parser import text_string_to_metric_families

from monitoring import forecast, monitor
from monitoring.models import Alert, ApiKey, CreditLog, Level, LimitReading, Workspace, WorkspaceSpend
from monitoring.openrouter import key_hash
from monitoring.simulator import (
    DEV_KEY,
    GUARDRAIL_ID,
    MANAGEMENT_KEY,
    PROD_KEY,
    RESEARCH_WORKSPACE_ID,
    WORKSPACE_ID,
    Clock,
    Simulator,
)
from monitoring.status import budget_refusal

pytestmark = pytest.mark.django_db

TOKEN = "budget-token"
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # a Thursday


@pytest.fixture
def clock(monkeypatch):
    """One clock for the simulator and for creditmon."""
    found = Clock(NOON)
    monkeypatch.setattr(timezone, "now", found)
    return found


@pytest.fixture
def world(clock, settings):
    sim = Simulator("management", now=clock).start()
    settings.OPENROUTER_BASE_URL = sim.url
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.OPENROUTER_TIMEOUT = 2.0
    settings.OPENROUTER_MAX_RETRIES = 0
    settings.NOTIFY_URLS = ""
    settings.API_TOKEN = settings.METRICS_TOKEN = TOKEN
    yield sim
    sim.stop()


def cli(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("checkcredits", *args, stdout=out, stderr=StringIO())
    return exited.value.code, out.getvalue()


def checks_at(clock: Clock, *times: datetime) -> None:
    for when in times:
        clock.at = when
        monitor.check_all(now=when)


def guardrail_world(world, clock) -> None:
    clock.at = NOON - timedelta(hours=2)
    world.set_scenario("guardrail-daily")
    checks_at(clock, NOON - timedelta(hours=2), NOON - timedelta(hours=1))
    clock.at = NOON


# --- one world per layer kind -------------------------------------------------------------------------------


def test_a_daily_guardrail_that_blocks_tonight_is_critical_with_the_guardrail_named(world, clock):
    guardrail_world(world, clock)
    code, report = cli()
    assert code == 2
    assert "Days Left: 0.3 days at current rate (guardrail gr_7c1e… (daily $10.00, $6.00 spent" in report
    assert "blocks at 20:00 UTC, 4 h 0 min before it resets at 00:00 UTC" in report
    assert "✗ CRITICAL: guardrail gr_7c1e…" in report

    code, verbose = cli("--verbose")
    assert "Limit: the key's own limit (lifetime $100.00, $59.00 spent): blocks at" in verbose
    assert "[binds first]" in verbose.split("Limit: guardrail")[1]
    rows = LimitReading.objects.filter(scope="api_key", guardrail_id=GUARDRAIL_ID).order_by("timestamp")
    assert [round(r.spend_usd, 2) for r in rows] == [5.0, 5.5, 6.0, 6.0]  # one per check, its own history


def test_the_guardrail_resets_at_midnight_and_its_history_spans_the_reset(world, clock):
    guardrail_world(world, clock)
    checks_at(clock, NOON, NOON + timedelta(hours=9))  # 21:00: refused since 20:00
    found = monitor.check_all(now=NOON + timedelta(hours=9))
    prod = found.primary
    layer = prod.binding_limit
    assert layer.remaining_usd == 0 and layer.level == Level.CRITICAL and layer.rule == "spent"
    assert "blocked until 2026-12-04 00:00 UTC" in prod.message
    checks_at(clock, NOON + timedelta(hours=13))  # 01:00 the next day: $0.50 of the new day spent
    prod = monitor.check_all(now=NOON + timedelta(hours=13)).primary
    layer = next(x for x in prod.limits if x.scope == "api_key")
    assert layer.spent_usd == pytest.approx(0.5)
    # Its own readings across the reset: $5.50 over 15 h (nothing while refused), so it holds until midnight.
    assert layer.rate == pytest.approx(5.5 / 15 * 24, rel=0.01) and layer.rate_source == "layer"
    assert layer.outlook.holds and layer.blocks_at is None
    assert layer.forecast_text == "holds until the reset: $8.93 of $10.00 projected"
    assert prod.binding == "key" and "budget_layer" in prod.conditions


def test_a_spent_member_budget_is_critical_at_the_first_check(world, clock):
    world.set_scenario("member-spent")
    code, out = cli("--json")
    payload = json.loads(out)
    key = payload["keys"][0]
    assert code == 2 and payload["status"] == "CRITICAL"
    assert key["binding"] == "member" and key["days_left"] == 0.0
    member = next(x for x in key["limits"] if x["scope"] == "member")
    assert member["level"] == "CRITICAL" and member["rule"] == "spent" and member["remaining_usd"] == 0.0
    assert "blocked until 2027-01-01 00:00 UTC" in key["message"] and "member budget" in key["message"]


def test_a_workspace_budget_shared_by_two_keys_shows_on_both(world, clock, settings):
    settings.OPENROUTER_API_KEYS = f"Dev={DEV_KEY}"
    clock.at = NOON - timedelta(hours=2)
    world.set_scenario("workspace-budget")
    checks_at(clock, NOON - timedelta(hours=2), NOON)
    found = monitor.check_all(now=NOON)
    layers = {s.name: next(x for x in s.limits if x.scope == "workspace") for s in found.keys}
    assert len(layers) == 2 and {x.budget_id for x in layers.values()} == {"wsb_5e2f7d11"}
    # Its own readings grow at both keys' rates ($30/day): $30 left, a day, before the month ends.
    for layer in layers.values():
        assert layer.rate == pytest.approx(30.0, rel=0.01) and layer.rate_source == "layer"
        assert layer.spent_usd == pytest.approx(472.5) and layer.days_left == pytest.approx(27.5 / 30, abs=0.01)
        assert "workspace budget wsb_5e2… (monthly $500.00" in layer.name
    assert {s.binding for s in found.keys} == {"workspace"}
    assert all(s.level == Level.CRITICAL for s in found.keys)


def test_a_budget_403_is_critical_at_the_first_check(world, clock):
    world.set_scenario("budget-403")
    code, out = cli()
    assert code == 2
    assert "OpenRouter API error (403) (Key limit exceeded: a budget for this key is exhausted)" in out
    assert "Guardrails settings" in out  # where to raise it


def test_a_429_names_its_limit_and_the_rate_limit_headers(world, clock):
    world.set_failure("http429-free")
    code, out = cli()
    assert code == 3
    assert "OpenRouter API error (429) (Rate limit exceeded: free-models-per-day." in out
    assert "(limit 50, remaining 0, reset 2026-12-04 00:00 UTC)" in out
    assert CreditLog.objects.get().http_status == 429


def test_only_a_403_that_names_a_budget_limit_or_guardrail_is_a_refusal():
    assert budget_refusal("OpenRouter API error (403) (Workspace monthly budget of $500.00 exceeded.): x")
    assert budget_refusal("OpenRouter API error (403) (Guardrail blocked this request): x")
    assert not budget_refusal("OpenRouter API error (403) (Only management keys can perform this operation): x")
    assert not budget_refusal("OpenRouter API error (403) (Forbidden): x")
    assert not budget_refusal("OpenRouter API error (403): the key is not allowed (or a budget is exhausted)")


def test_an_exhausted_free_quota_warns_with_its_reset_for_a_key_that_uses_free_models(world, clock):
    world.set_scenario("free-exhausted")
    code, out = cli("--json")
    key = json.loads(out)["keys"][0]
    assert code == 2 and key["conditions"]["free_quota"] == "CRITICAL"
    assert key["free_model_requests"] == {"limit": 50, "remaining": 0, "used": 50}
    assert "0 of 50 requests left today (resets 2026-12-04 00:00 UTC" in key["message"]


def test_a_free_quota_with_a_tenth_left_warns_and_one_with_plenty_says_nothing(world, clock):
    world.free_quota = (50, 45)
    code, out = cli("--json")
    key = json.loads(out)["keys"][0]
    assert code == 1 and key["conditions"]["free_quota"] == "WARNING"
    world.free_quota = (1000, 45)
    code, out = cli("--json")
    assert code == 0 and "free_quota" not in json.loads(out)["keys"][0]["conditions"]


def test_a_key_seen_only_through_keys_has_no_layers_and_says_so(world, clock, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    world.set_scenario("guardrail-daily")
    world.layers[0].tokens.append(DEV_KEY)  # Dev has the guardrail too, but /keys does not tell
    found = monitor.check_all(now=NOON)
    dev = next(s for s in found.keys if s.key.hash == key_hash(DEV_KEY))
    assert dev.key.source == ApiKey.SOURCE_LISTED
    assert [x.scope for x in dev.limits] == ["key_limit"]
    assert dev.as_dict()["limits_note"] == "only the key's own cap is known: watch the key directly to see its budgets"


def test_a_key_without_budgets_keeps_the_money_binding(world, clock):
    checks_at(clock, NOON - timedelta(days=1))
    world.set_key(PROD_KEY, usage=64.77)  # $10/day, $35.23 left
    found = monitor.check_all(now=NOON)
    prod = found.primary
    assert prod.binding == "key" and prod.days_left == pytest.approx(3.523, abs=0.01)
    assert [x.scope for x in prod.limits] == ["key_limit"] and prod.limits[0].binding
    assert "budget_layer" not in prod.conditions


# --- the budget layer alert and its notification ---------------------------------------------------------


def test_the_guardrail_alert_says_which_layer_and_when(world, clock, settings, webhook_receiver):
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    guardrail_world(world, clock)
    monitor.run_monitor(now=NOON)
    alert = Alert.objects.get(condition=Alert.BUDGET_LAYER)
    assert alert.level == Level.CRITICAL
    body = webhook_receiver.received[-1]["body"]["message"]
    assert "guardrail gr_7c1e…" in body and "blocks at 20:00 UTC" in body


# --- one truth: the binding layer on every surface ------------------------------------------------------


def test_the_binding_guardrail_is_the_same_on_every_surface(world, clock, client, django_user_model):
    guardrail_world(world, clock)
    client.force_login(django_user_model.objects.create_superuser("ops", password="x" * 16))
    code, report = cli()
    assert code == 2 and "Days Left: 0.3 days" in report and "guardrail gr_7c1e…" in report

    code, out = cli("--json")
    key = json.loads(out)["keys"][0]
    assert (code, key["level"], key["binding"], key["days_left"]) == (2, "CRITICAL", "api_key", 0.3)
    guard = next(x for x in key["limits"] if x["binding"])
    assert guard["scope"] == "api_key" and guard["days_left"] == 0.33 and guard["guardrail_id"] == GUARDRAIL_ID
    assert guard["blocks_at"] == "2026-12-03T20:00:00+00:00" and guard["level"] == "CRITICAL"

    api = client.get("/api/status/", headers={"Authorization": f"Bearer {TOKEN}"}).json()["keys"][0]
    assert (api["level"], api["binding"], api["days_left"]) == ("CRITICAL", "api_key", 0.3)
    assert api["limits"] == key["limits"]

    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    found = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    assert [s.labels["binding"] for s in found["creditmon_binding_info"]] == ["api_key"]
    until = next(s for s in found["creditmon_budget_seconds_until_block"] if s.labels["scope"] == "api_key")
    assert until.value == pytest.approx(8 * 3600, abs=60) and until.labels["layer"] == GUARDRAIL_ID
    assert found["creditmon_days_left"][0].value == pytest.approx(1 / 3, abs=0.01)
    assert found["creditmon_check_level"][0].value == Level.CRITICAL

    page = client.get("/health/").text
    card = re.search(r'<article class="card key-card level-(\w+)"(.*?)</article>', page, re.S)
    assert card.group(1) == "critical"
    bound = re.search(r'<li class="limit[^"]*binding[^"]*" data-scope="(\w+)"', card.group(2))
    assert bound and bound.group(1) == "api_key"
    assert re.search(r'data-figure="days-left">0\.3 days', card.group(2))


# --- the pure forecast of a layer -----------------------------------------------------------------------


def test_a_layer_that_resets_before_it_runs_out_holds_with_its_projection():
    found = forecast.layer_forecast(9.0, 1.0, 6.0, NOON, NOON + timedelta(hours=12))
    assert found.holds and found.blocks_at is None and found.projected == pytest.approx(4.0)
    found = forecast.layer_forecast(4.0, 6.0, 12.0, NOON, NOON + timedelta(hours=12))
    assert found.blocks_at == NOON + timedelta(hours=8) and found.days_left == pytest.approx(1 / 3)
    lifetime = forecast.layer_forecast(20.0, 30.0, 2.0, NOON, None)
    assert lifetime.days_left == pytest.approx(10.0) and not lifetime.holds
    assert forecast.layer_forecast(0.0, 10.0, None, NOON, None).blocks_at == NOON


WORLDS = ["guardrail-daily", "member-spent", "workspace-budget", "free-exhausted", "steady"]


@pytest.mark.parametrize("scenario", WORLDS)
def test_the_official_sdk_parses_every_budget_world(world, clock, scenario):
    world.set_scenario(scenario)
    token = DEV_KEY if scenario == "steady" else PROD_KEY  # the demo's guardrail is on Dev
    with OpenRouter(api_key=token, server_url=world.url, retry_config=None) as sdk, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        data = sdk.api_keys.get_current_key_metadata().data
    scopes = [budget.scope for budget in data.budgets]
    assert data.effective_budget is not None and data.effective_budget.scope in scopes
    if scenario == "free-exhausted":
        assert (data.free_model_daily_requests.remaining, data.free_model_daily_requests.limit) == (0, 50)
    else:
        assert len(scopes) == 2 and scopes[-1] == "key_limit"  # the layer, then the key's own limit


def test_in_the_demo_world_a_weekly_guardrail_binds_dev_long_before_its_cap(world, clock, settings):
    settings.OPENROUTER_API_KEY, settings.OPENROUTER_API_KEYS = DEV_KEY, ""
    clock.at = NOON - timedelta(hours=2)
    world.set_scenario("steady")
    checks_at(clock, NOON - timedelta(hours=2), NOON)
    dev = monitor.check_all(now=NOON).primary
    # Thursday noon: $1.40 of the $2.50 week spent at $0.40/day: refused from Sunday 06:00 until Monday.
    assert dev.binding == "api_key" and dev.days_left == pytest.approx(1.1 / 0.4, rel=0.01)
    assert dev.money_days_left == pytest.approx(16.9 / 0.4, rel=0.05)  # the cap would last six weeks
    assert dev.binding_limit.blocks_at.strftime("%a %H:%M") == "Sun 06:00"
    assert dev.level == Level.WARNING and "weekly $2.50" in dev.message


# --- workspaces ---------------------------------------------------------------------------------------


def test_keys_of_every_workspace_are_listed_and_spend_is_stored_per_workspace(world, clock, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    world.set_scenario("workspaces")
    monitor.run_monitor(now=NOON)
    dev = ApiKey.objects.get(hash=key_hash(DEV_KEY))
    assert dev.source == ApiKey.SOURCE_LISTED and dev.workspace_id == RESEARCH_WORKSPACE_ID  # not the default one
    assert ApiKey.objects.get(hash=key_hash(PROD_KEY)).workspace_id == WORKSPACE_ID
    assert dict(Workspace.objects.values_list("workspace_id", "name")) == {
        WORKSPACE_ID: "Default Workspace",
        RESEARCH_WORKSPACE_ID: "Research",
    }
    spend = WorkspaceSpend.objects.daily_by_workspace()
    assert set(spend) == {WORKSPACE_ID, RESEARCH_WORKSPACE_ID}
    yesterday = (NOON - timedelta(days=1)).date()
    # Research holds Dev alone: its day is Dev's own activity, as /activity per key says.
    assert spend[RESEARCH_WORKSPACE_ID][yesterday] == pytest.approx(
        sum(row["usage"] for row in world.activity_rows(world.keys[DEV_KEY], yesterday))
    )
    assert len(spend[WORKSPACE_ID]) == 30  # the last 30 completed days


def test_system_health_groups_the_keys_by_workspace_with_its_budgets_and_spend(world, clock, settings, client):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    world.set_scenario("workspaces")
    monitor.run_monitor(now=NOON)
    research = Workspace.objects.get(workspace_id=RESEARCH_WORKSPACE_ID)
    assert research.budgets == [{"id": research.budgets[0]["id"], "limit_usd": 100.0, "reset_interval": "monthly"}]
    assert Workspace.objects.get(workspace_id=WORKSPACE_ID).budgets == []
    client.force_login(django_user_model_create("wendy"))
    page = client.get("/health/").content.decode()
    rows = re.findall(r'<tr data-workspace="([^"]+)">(.*?)</tr>', page, re.S)
    assert {ident for ident, _ in rows} == {WORKSPACE_ID, RESEARCH_WORKSPACE_ID}
    found = dict(rows)
    assert "Research" in found[RESEARCH_WORKSPACE_ID] and "$100.00 monthly" in found[RESEARCH_WORKSPACE_ID]
    dev = ApiKey.objects.get(hash=key_hash(DEV_KEY))
    assert dev.display_name in found[RESEARCH_WORKSPACE_ID] and dev.display_name not in found[WORKSPACE_ID]
    week = WorkspaceSpend.objects.daily_by_workspace()[RESEARCH_WORKSPACE_ID]
    spent = sum(v for day, v in week.items() if (NOON.date() - day).days in range(1, 8))
    assert f"${spent:,.2f}" in found[RESEARCH_WORKSPACE_ID]


def django_user_model_create(name: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(name, password="x" * 16)


def test_financial_charts_spend_by_workspace_from_the_stored_days(world, clock, settings, client):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    world.set_scenario("workspaces")
    monitor.run_monitor(now=NOON)
    client.force_login(django_user_model_create("fiona"))
    response = client.get("/financial/?range=7")
    chart = response.context["chart"]["workspaces"]
    stored = WorkspaceSpend.objects.daily_by_workspace((NOON - timedelta(days=7)).date())
    research = next(d for d in chart["datasets"] if d["label"] == "Research")
    assert research["data"] == [round(stored[RESEARCH_WORKSPACE_ID].get(date.fromisoformat(day), 0.0), 4)
                                for day in chart["labels"]]  # fmt: skip
    assert 'id="workspace-chart"' in response.content.decode()
    rows = {r["name"]: r["spend"] for r in response.context["breakdown"]["workspaces"]}
    assert rows["Research"] == pytest.approx(sum(stored[RESEARCH_WORKSPACE_ID].values()))
