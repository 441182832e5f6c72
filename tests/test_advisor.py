"""The model advisor against the simulator over real HTTP: the catalogue, the costs, the candidates, the
models going away, and the surfaces that show them (CLI, API)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring import advisor, alerts, catalogue, monitor
from monitoring.models import Alert, AlertEvent, CatalogueFetch, CatalogueModel, CataloguePrice, Level
from monitoring.simulator import DEV_KEY, EXPIRES_IN_DAYS, EXPIRING_MODEL, MANAGEMENT_KEY, PROD_KEY, Simulator

EXPENSIVE = "openai/gpt-4.1"
TOKEN = "advice-token-for-tests"


@pytest.fixture
def account(sim, settings):
    """A management key, so the scheduled run syncs the per-model activity and the catalogue."""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.API_TOKEN = TOKEN
    sim.retiring = {EXPIRING_MODEL: EXPIRES_IN_DAYS}  # as in the demo's world (the "steady" scenario)
    return sim


def one_model(sim, model: str = EXPENSIVE) -> None:
    """A month of activity on one model, on both keys."""
    sim.set_key(PROD_KEY, activity_models=[model])
    sim.set_key(DEV_KEY, activity_models=[model])


def advise(*args: str) -> dict:
    out = StringIO()
    call_command("advisemodels", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def served_activity(sim) -> list[dict]:
    response = requests.get(f"{sim.url}/activity", headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"}, timeout=5)
    return response.json()["data"]


def served_catalogue(sim) -> dict[str, dict]:
    """Every page of the simulator's catalogue, read without our client."""
    found, url = {}, f"{sim.url}/models"
    while url:
        body = requests.get(url, timeout=5).json()
        found.update({m["id"]: m for m in body["data"]})
        nxt = (body.get("links") or {}).get("next")
        url = sim.url.removesuffix("/api/v1") + nxt if nxt else None
    return found


def by_hand(rows: list[dict], pricing: dict, cache: bool) -> Decimal:
    """The cost of these activity rows' tokens at these string prices, computed here, then cents."""
    prompt = sum(r["prompt_tokens"] for r in rows)
    cached = sum(r["cached_tokens"] for r in rows) if cache else 0
    cost = (prompt - cached) * Decimal(pricing["prompt"]) + sum(r["completion_tokens"] for r in rows) * Decimal(
        pricing["completion"]
    )
    if cache:
        cost += cached * Decimal(pricing["input_cache_read"])
    if "internal_reasoning" in pricing:
        cost += sum(r["reasoning_tokens"] for r in rows) * Decimal(pricing["internal_reasoning"])
    if "request" in pricing:
        cost += sum(r["requests"] for r in rows) * Decimal(pricing["request"])
    return cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def entry_for(answer: dict, model: str) -> dict:
    return next(m for m in answer["models"] if m["model"] == model)


@pytest.mark.django_db
def test_a_month_on_one_expensive_model_gives_its_spend_and_a_cheaper_candidate_to_the_cent(account):
    one_model(account)
    monitor.run_monitor(timezone.now())
    answer = advise()
    rows = [r for r in served_activity(account) if r["model"] == EXPENSIVE]
    assert [m["model"] for m in answer["models"]] == [EXPENSIVE]
    entry = answer["models"][0]
    assert entry["spend"] == float(Decimal(str(sum(r["usage"] for r in rows))).quantize(Decimal("0.01")))
    assert entry["requests"] == sum(r["requests"] for r in rows)
    assert entry["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
    assert entry["cached_tokens"] == sum(r["cached_tokens"] for r in rows)
    listed = served_catalogue(account)
    nano = next(c for c in entry["candidates"] if c["model"] == "openai/gpt-4.1-nano")
    assert nano["cost"] == float(by_hand(rows, listed["openai/gpt-4.1-nano"]["pricing"], cache=True))
    assert nano["saving"] == pytest.approx(entry["spend"] - nano["cost"], abs=0.011)
    assert nano["cost"] < entry["spend"]
    assert "tools" in nano["matched"] and "context >= 1,047,576" in nano["matched"]
    assert nano["url"] == "https://openrouter.ai/openai/gpt-4.1-nano"
    assert entry["candidates"][0]["saving"] >= entry["candidates"][-1]["saving"]  # ranked by saving
    # Its own list price for the same tokens is what the simulator charged: paid as listed, no reason to give.
    assert entry["list_cost"] == pytest.approx(entry["spend"], rel=0.001) and entry["price_notes"] == []
    assert entry["list_prompt_price"] == 2.0 and entry["list_completion_price"] == 8.0


@pytest.mark.django_db
def test_a_model_with_a_smaller_context_is_not_a_candidate(account):
    one_model(account)
    monitor.run_monitor(timezone.now())
    entry = advise()["models"][0]
    assert "openai/gpt-4o-mini" not in [c["model"] for c in entry["candidates"]]
    refused = {r["model"]: r["reason"] for r in entry["not_like_for_like"]}
    assert refused["openai/gpt-4o-mini"] == "context 128,000 tokens < 1,047,576"


@pytest.mark.django_db
def test_a_model_without_tool_calling_is_not_a_candidate(account):
    one_model(account)
    monitor.run_monitor(timezone.now())
    entry = advise()["models"][0]
    assert "google/gemini-2.0-flash-lite-001" not in [c["model"] for c in entry["candidates"]]
    refused = {r["model"]: r["reason"] for r in entry["not_like_for_like"]}
    assert refused["google/gemini-2.0-flash-lite-001"] == "no tools"


@pytest.mark.django_db
def test_a_model_missing_an_input_modality_is_not_a_candidate(account):
    one_model(account)
    monitor.run_monitor(timezone.now())
    entry = advise()["models"][0]
    refused = {r["model"]: r["reason"] for r in entry["not_like_for_like"]}
    assert refused["x-ai/grok-4-fast"] == "no input file"
    assert "x-ai/grok-4-fast" not in [c["model"] for c in entry["candidates"]]


@pytest.mark.django_db
def test_a_model_without_reasoning_is_not_a_candidate_for_one_that_reasons(account):
    one_model(account, "google/gemini-2.5-flash")
    monitor.run_monitor(timezone.now())
    entry = advise()["models"][0]
    refused = {r["model"]: r["reason"] for r in entry["not_like_for_like"]}
    assert refused["google/gemini-2.0-flash-001"] == "no reasoning"
    lite = next(c for c in entry["candidates"] if c["model"] == "google/gemini-2.5-flash-lite")
    rows = [r for r in served_activity(account) if r["model"] == "google/gemini-2.5-flash"]
    pricing = served_catalogue(account)["google/gemini-2.5-flash-lite"]["pricing"]
    assert lite["cost"] == float(by_hand(rows, pricing, cache=True))


@pytest.mark.django_db
def test_a_free_variant_counts_only_when_the_free_quota_carries_the_busiest_day(account):
    one_model(account, "meta-llama/llama-3.3-70b-instruct")
    monitor.run_monitor(timezone.now())
    entry = advise()["models"][0]
    free = "meta-llama/llama-3.3-70b-instruct:free"
    # The simulator's keys report a quota of 1000 requests a day; the busiest day is far above it.
    assert entry["requests"] / 30 > 1000
    assert free not in [c["model"] for c in entry["candidates"]]
    reason = {r["model"]: r["reason"] for r in entry["not_like_for_like"]}[free]
    assert reason.endswith("> the free quota of 1,000 a day")


@pytest.mark.django_db
def test_a_used_model_retiring_within_30_days_is_named_with_its_date_and_warns_once(account):
    monitor.run_monitor(timezone.now())  # the demo's keys use the expiring model among others
    answer = advise()
    entry = entry_for(answer, EXPIRING_MODEL)
    expected = (timezone.now().date() + timedelta(days=EXPIRES_IN_DAYS)).isoformat()
    assert entry["expiration_date"] == expected and entry["expires_in_days"] == EXPIRES_IN_DAYS
    assert [m["model"] for m in answer["models"] if m["expiration_date"]] == [EXPIRING_MODEL]
    alert = Alert.objects.open().get(condition=Alert.MODEL_EXPIRY)
    assert alert.subject == EXPIRING_MODEL and alert.level == Level.WARNING
    assert expected in alert.message and entry["candidates"][0]["model"] in alert.message
    assert "anthropic/claude-haiku-4.5" in [c["model"] for c in entry["candidates"]]
    assert alert.get_condition_display() == "Model going away"
    monitor.run_monitor(timezone.now() + timedelta(minutes=5))
    assert AlertEvent.objects.filter(alert=alert, kind=AlertEvent.OPENED).count() == 1
    assert Alert.objects.filter(condition=Alert.MODEL_EXPIRY).count() == 1


@pytest.mark.django_db
def test_a_model_not_retiring_soon_resolves_its_alert(account, settings):
    monitor.run_monitor(timezone.now())
    assert Alert.objects.open().filter(condition=Alert.MODEL_EXPIRY).exists()
    settings.ADVISOR_EXPIRY_DAYS = 10
    alerts.evaluate(monitor.status.build(timezone.now()), timezone.now())
    assert not Alert.objects.open().filter(condition=Alert.MODEL_EXPIRY).exists()


@pytest.mark.django_db
def test_the_catalogue_follows_every_page_and_leaves_out_a_negative_price_with_its_reason(account):
    fetch = catalogue.refresh(timezone.now())
    pages = [r for r in account.requests if r["path"].endswith("/models")]
    assert len(pages) == 2
    assert fetch.ok and fetch.models_count == len(served_catalogue(account)) - 1
    assert fetch.skipped == "openrouter/auto: price `prompt` is -1 (negative)"
    assert all("Authorization" not in r["headers"] for r in pages)  # public: the key is never sent
    assert CatalogueModel.objects.get(model_id=EXPENSIVE).prompt_price == Decimal("0.000002")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mode, reason",
    [
        ("html", "text/html instead of JSON"),
        ("huge", "exceeds"),
        ("nan", "is not a finite number"),
        ("wrong-types", "`context_length` is not a whole number"),
        ("implausible", "(negative)"),
        ("malformed", "malformed JSON"),
    ],
)
def test_a_hostile_catalogue_fails_cleanly_and_the_advice_says_how_old_its_prices_are(account, mode, reason):
    old = timezone.now() - timedelta(days=3)
    assert catalogue.refresh(old).ok
    account.set_failure(mode)
    one_model(account)
    monitor.run_monitor(timezone.now())  # the check itself goes on
    account.set_failure(None)
    failed = CatalogueFetch.objects.first()
    assert not failed.ok and reason in failed.error
    assert CatalogueModel.objects.get(model_id=EXPENSIVE).fetched_at == old  # the old copy is kept
    answer = advisor.advice(timezone.now(), 30)
    assert answer["catalogue_age_hours"] == pytest.approx(72, abs=0.2)
    assert reason in answer["catalogue_note"]


@pytest.mark.django_db
def test_a_price_change_is_a_row_in_the_price_history(account):
    catalogue.refresh(timezone.now() - timedelta(days=2))
    account.set_model_prices(EXPENSIVE, prompt="0.0000025")
    catalogue.refresh(timezone.now())
    history = CataloguePrice.objects.filter(model__model_id=EXPENSIVE).order_by("changed_at")
    assert [(h.first, h.prompt_price) for h in history] == [(True, Decimal("0.000002")), (False, Decimal("0.0000025"))]
    changes = catalogue.price_changes([EXPENSIVE], timezone.now() - timedelta(days=7))
    assert changes[0]["before"]["prompt"] == Decimal("0.000002") and changes[0]["after"]["prompt"] == Decimal(
        "0.0000025"
    )
    assert CataloguePrice.objects.filter(model__model_id="openai/gpt-4.1-mini").count() == 1  # unchanged


@pytest.mark.django_db
def test_the_catalogue_is_fetched_at_most_daily_by_the_scheduled_run(account):
    now = timezone.now()
    monitor.run_monitor(now)
    monitor.run_monitor(now + timedelta(hours=6))
    assert CatalogueFetch.objects.count() == 1
    monitor.run_monitor(now + timedelta(days=1, minutes=1))
    assert CatalogueFetch.objects.count() == 2


@pytest.mark.django_db
def test_the_cli_json_and_the_api_give_the_same_answer(account, client):
    one_model(account)
    monitor.run_monitor(timezone.now())
    from_cli = advise("--days", "7")
    response = client.get("/api/models/advice?days=7", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    from_api = response.json()
    for answer in (from_cli, from_api):
        answer.pop("generated_at")
        answer.pop("catalogue_age_hours")
    assert from_cli == from_api
    assert from_cli["models"][0]["candidates"]


@pytest.mark.django_db(transaction=True)  # the tool runs on a thread of its own, with its own connection
def test_the_mcp_tool_gives_the_cli_answer(account):
    from concurrent.futures import ThreadPoolExecutor

    from mcp.client import Client

    from monitoring.mcp_server import app

    one_model(account)
    monitor.run_monitor(timezone.now())

    async def ask():
        async with Client(app) as client:
            return await client.call_tool("recommend_models", {"days": 7})

    with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever the browser tests left on this thread
        result = pool.submit(lambda: __import__("asyncio").run(ask())).result()
    from_tool = json.loads(result.content[0].text)
    from_cli = advise("--days", "7")
    for answer in (from_cli, from_tool):
        answer.pop("generated_at")
        answer.pop("catalogue_age_hours")
    assert from_tool == from_cli and from_tool["models"][0]["model"] == EXPENSIVE


@pytest.mark.django_db
def test_the_api_refuses_without_a_token_and_a_bad_window(account, client):
    assert client.get("/api/models/advice").status_code == 401
    bad = client.get("/api/models/advice?days=nine", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "days" in bad.json()["error"]


@pytest.mark.django_db
def test_the_text_report_has_one_block_per_model_biggest_spend_first(account):
    monitor.run_monitor(timezone.now())
    out = StringIO()
    call_command("advisemodels", stdout=out)
    text = out.getvalue()
    answer = advise()
    heads = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "Model", "List"))]
    assert heads == [m["model"] for m in answer["models"]]
    spends = [m["spend"] for m in answer["models"]]
    assert spends == sorted(spends, reverse=True)
    assert f"GOING AWAY: may be removed after {entry_for(answer, EXPIRING_MODEL)['expiration_date']}" in text


@pytest.mark.django_db
def test_the_cli_refuses_a_bad_window_in_one_line(account):
    with pytest.raises(CommandError, match="--days must be a whole number from 1 to 90") as refused:
        call_command("advisemodels", "--days", "0")
    assert refused.value.returncode == 3  # an argument error, like the other commands'
    with pytest.raises(CommandError, match="--days") as typo:
        call_command("advisemodels", "--days", "thirty")
    assert typo.value.returncode == 3


@pytest.mark.django_db
def test_an_optimisation_opportunity_names_the_candidate_that_saves_most_of_the_spend(account, settings):
    one_model(account)
    monitor.run_monitor(timezone.now())
    found = advisor.optimization_opportunity(timezone.now())
    entry = advise()["models"][0]
    assert found["model"] == EXPENSIVE and found["candidate"] == entry["candidates"][0]["model"]
    assert found["saving_percent_of_account"] > 30
    settings.ADVISOR_SAVING_PERCENT = 99.9
    assert advisor.optimization_opportunity(timezone.now()) is None


@pytest.mark.django_db
def test_the_run_opens_an_optimize_models_task_at_most_weekly(account):
    from monitoring.models import AgentTask

    one_model(account)
    now = timezone.now()
    monitor.run_monitor(now)
    task = AgentTask.objects.get(kind=AgentTask.OPTIMIZE_MODELS)
    found = advisor.optimization_opportunity(now)
    assert task.evidence["candidate"] == found["candidate"] and task.evidence["model"] == EXPENSIVE
    assert f"${found['saving']:,.2f} less" in task.title and "Quality is not compared" in task.body
    monitor.run_monitor(now + timedelta(days=1))  # a day later: still the same one
    assert AgentTask.objects.filter(kind=AgentTask.OPTIMIZE_MODELS).count() == 1


@pytest.mark.django_db
def test_the_what_if_moves_the_models_spend_to_the_candidates_cost(account):
    one_model(account)
    now = timezone.now()
    monitor.run_monitor(now)
    entry = advise()["models"][0]
    best = entry["candidates"][0]
    found = advisor.what_if(now, 30, EXPENSIVE, best["model"])
    assert found["burn_rate_per_day"] is not None
    expected = found["burn_rate_per_day"] - entry["spend"] / 30 + best["cost"] / 30
    assert found["swapped_burn_rate_per_day"] == pytest.approx(max(0.0, expected))
    assert found["swapped_monthly_spend"] == pytest.approx(found["swapped_burn_rate_per_day"] * 30)
    with pytest.raises(ValueError, match="not a like-for-like candidate"):
        advisor.what_if(now, 30, EXPENSIVE, "openai/gpt-4o-mini")


@pytest.fixture
def logged_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-for-tests"))
    return client


@pytest.mark.django_db
def test_financial_shows_model_costs_as_a_table_with_the_advices_figures(account, logged_in):
    one_model(account)
    monitor.run_monitor(timezone.now())
    response = logged_in.get("/financial/?range=30")
    assert response.status_code == 200
    entry = advise()["models"][0]
    best = entry["candidates"][0]
    section = response.content.decode().split('id="model-costs"')[1].split("</section>")[0]
    assert "Model costs" in section and EXPENSIVE in section
    assert f"${entry['spend']:,.2f}" in section and f"${best['cost']:,.2f}" in section
    assert best["url"] in section


@pytest.mark.django_db
def test_the_what_if_on_financial_projects_the_swap_with_the_same_figures(account, logged_in):
    one_model(account)
    now = timezone.now()
    monitor.run_monitor(now)
    best = advise()["models"][0]["candidates"][0]["model"]
    response = logged_in.get("/financial/", {"range": "30", "swap": f"{EXPENSIVE}|{best}"})
    assert response.status_code == 200
    found = advisor.what_if(timezone.now(), 30, EXPENSIVE, best)
    table = response.content.decode().split('id="what-if-table"')[1].split("</table>")[0]
    assert f"${found['swapped_burn_rate_per_day']:,.2f}/day" in table
    assert f"${found['swapped_monthly_spend']:,.2f}" in table
    bad = logged_in.get("/financial/", {"range": "30", "swap": f"{EXPENSIVE}|openai/gpt-4o-mini"})
    assert "not a like-for-like candidate" in bad.content.decode()


@pytest.mark.django_db
def test_a_price_change_on_a_used_model_is_an_event_on_financial(account, logged_in):
    one_model(account)
    monitor.run_monitor(timezone.now() - timedelta(days=1, hours=1))
    account.set_model_prices(EXPENSIVE, prompt="0.0000025")
    monitor.run_monitor(timezone.now())
    page = logged_in.get("/financial/?range=30").content.decode()
    events = page.split('id="price-changes"')[1].split("</ul>")[0]
    assert EXPENSIVE in events and "prompt $2 → $2.5 per M" in events


def test_the_demo_world_uses_a_model_going_away_and_one_with_a_cheaper_like_for_like_candidate():
    with Simulator("steady") as world:
        listed = served_catalogue(world)
        used = {row["model"] for row in served_activity(world)}
    assert EXPIRING_MODEL in used and listed[EXPIRING_MODEL]["expiration_date"]
    assert EXPENSIVE in used and "openai/gpt-4.1-nano" in listed
    with Simulator("management") as quiet:  # the tests' world: nothing retires unless a test says so
        assert all(m["expiration_date"] is None for m in served_catalogue(quiet).values())


@pytest.mark.django_db
def test_metrics_tell_the_catalogues_age(account, client, settings):
    settings.METRICS_TOKEN = TOKEN
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    assert "creditmon_model_catalogue_age_seconds" not in scrape  # never fetched: no series, not a 0
    catalogue.refresh(timezone.now() - timedelta(hours=5))
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    line = next(x for x in scrape.splitlines() if x.startswith("creditmon_model_catalogue_age_seconds "))
    assert float(line.split()[1]) == pytest.approx(5 * 3600, abs=60)


@pytest.mark.django_db
def test_a_free_variant_is_a_candidate_when_the_quota_carries_the_busiest_day(account):
    one_model(account, "meta-llama/llama-3.3-70b-instruct")
    account.set_key(PROD_KEY, activity_per_day=0.3)
    account.set_key(DEV_KEY, activity_per_day=0.1)
    monitor.run_monitor(timezone.now())
    answer = advise()
    assert answer["free_model_daily_requests"] == 1000  # from the latest GET /key answer
    entry = answer["models"][0]
    free = next(c for c in entry["candidates"] if c["model"] == "meta-llama/llama-3.3-70b-instruct:free")
    assert free["cost"] == 0.0 and free["saving"] == entry["spend"]
    assert "free quota carries the busiest day" in free["matched"]
