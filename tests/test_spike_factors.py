"""Spikes explain themselves: spend = requests x tokens per request x price, each factor named when it moved.

The maths alone, then a spike built from each factor on the simulator (a model's requests, its tokens per
request, its price) and the explanation naming the right one; then the whole chain on one runaway model:
spike -> explanation -> task -> webhook -> claim -> done.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitoring import drivers, spike_factors
from monitoring.models import AgentTask, Alert, ApiKey
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, MODELS, PROD_KEY, Clock, Simulator
from monitoring.tasks import monitor_job, watch_job

SONNET = MODELS[1][0]
NOW = datetime(2026, 11, 12, 12, 0, tzinfo=UTC)
YESTERDAY = datetime(2026, 11, 11, tzinfo=UTC)


class TestTheMaths:
    def test_the_three_ratios_multiply_to_the_spend_ratio(self):
        base = spike_factors.Usage(requests=700, tokens=700_000, spend=7.0, days=7)
        latest = spike_factors.Usage(requests=300, tokens=600_000, spend=12.0)
        found = spike_factors.ratios(latest, base)
        assert found["requests"] == pytest.approx(3.0)
        assert found["tokens_per_request"] == pytest.approx(2.0)
        assert found["price_per_token"] == pytest.approx(2.0)
        product = found["requests"] * found["tokens_per_request"] * found["price_per_token"]
        assert product == pytest.approx(found["spend"])

    def test_only_the_factors_beyond_the_bar_and_the_noise_moved(self):
        found = {"requests": 4.1, "tokens_per_request": 1.1, "price_per_token": 0.5}
        assert spike_factors.moved(found) == ["requests", "price_per_token"]
        assert spike_factors.moved(found, noise={"price_per_token": 2.5}) == ["requests"]

    def test_the_statement_names_the_factor_and_what_did_not_move(self):
        found = {"requests": 4.1, "tokens_per_request": 1.0, "price_per_token": 1.02}
        text = spike_factors.statement(SONNET, found, "via key svc-b", "on 2026-12-03", ["requests"])
        assert text == f"requests ×4.1 on {SONNET} via key svc-b on 2026-12-03; tokens per request and price unchanged"

    def test_the_rise_started_after_the_last_slow_stretch(self):
        t = [NOW.replace(hour=h) for h in (0, 3, 6, 9, 10, 11)]
        usage = [0.0, 0.1, 0.2, 0.3, 1.3, 2.3]  # $0.80/day, then $24/day from 09:00
        assert spike_factors.rise_start(list(zip(t, usage, strict=True)), 1.0, 3.0) == NOW.replace(hour=9)
        assert spike_factors.rise_start(list(zip(t, usage, strict=True))[:4], 1.0, 3.0) is None  # no rise


@pytest.fixture
def world(settings, webhook_receiver):
    """A simulated OpenRouter on its own clock, with the management key (so activity is stored)."""
    clock = Clock(NOW)
    sim = Simulator("management", now=clock).start()
    sim.remove_key(DEV_KEY)
    sim.set_account(500.0, 100.0)
    settings.OPENROUTER_BASE_URL = sim.url
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.OPENROUTER_MAX_RETRIES = 0
    settings.NOTIFY_URLS = ""
    settings.HEARTBEAT_URL = ""
    settings.AGENT_WEBHOOK_URL = f"http://{webhook_receiver.url}/agents"
    settings.AGENT_WEBHOOK_SECRET = "s3cret-for-agents"
    yield sim, clock
    sim.stop()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("factor", "surge"),
    [
        ("requests", {"requests": 6.0}),
        ("tokens_per_request", {"tokens": 6.0}),
        ("price_per_token", {"price": 6.0}),
    ],
)
def test_a_spike_from_each_factor_is_explained_by_that_factor(world, settings, factor, surge):
    sim, clock = world
    settings.SPIKE_MIN_USD = 1.0  # the model spends about $1/day: its spike is a few dollars
    sim.set_model_surge(PROD_KEY, SONNET, since=YESTERDAY, **surge)
    monitor_job(now=NOW)  # checks the key and stores its activity
    found = drivers.explain_spike(ApiKey.objects.get(is_primary=True), NOW)
    top = found["factors"][0]
    assert top["model"] == SONNET and top["day"] == "2026-11-11"
    assert top["moved"] == [factor]
    assert top["ratios"][factor] > 3
    others = [f for f in spike_factors.FACTORS if f != factor]
    assert all(0.5 < top["ratios"][f] < 2 for f in others)  # the day's noise, not the surge
    word = spike_factors.FACTOR_WORDS[factor]
    assert top["statement"].startswith(f"{word} ×") and f"on {SONNET} via key Production Key" in top["statement"]
    assert top["source"] == drivers.ACTIVITY
    assert found["text"].count(" (from ") >= 1 and "Not known yet: today's split by model" in found["text"]
    # The account's model spike alert opened on the same data, and its task says the same factor.
    task = AgentTask.objects.get(alert__condition=Alert.MODEL_SPIKE, alert__subject=SONNET)
    assert task.kind == AgentTask.INVESTIGATE_SPIKE
    (account_factor,) = task.evidence["explanation"]["factors"]
    assert account_factor["model"] == SONNET and account_factor["moved"] == [factor]
    assert f"{word} ×" in task.body and "on the account" in task.body


@pytest.mark.django_db
def test_one_runaway_model_goes_from_spike_to_a_done_task(world, webhook_receiver, client, settings):
    """The demo's chain without a key: runaway -> explanation -> task -> webhook -> claim -> done."""
    sim, clock = world
    settings.API_OPERATOR_TOKEN = "op-token-abcdef"
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/notify"
    clock.at = NOW - timedelta(days=3)
    sim.set_key(PROD_KEY, limit=100.0, usage=40.0, spend_per_day=3.0, activity_per_day=3.0)
    for n in range(12):  # three days of scheduled checks at the usual pace
        clock.at = NOW - timedelta(days=3) + timedelta(hours=6 * n)
        monitor_job(now=clock.at)
    sim.set_model_surge(PROD_KEY, SONNET, requests=40.0, since=clock.at)
    moment = clock.at
    while not Alert.objects.filter(condition=Alert.RUNAWAY).exists() and moment - clock.at < timedelta(hours=2):
        moment += timedelta(minutes=10)
        clock.at = moment
        watch_job(now=moment)
    alert = Alert.objects.get(condition=Alert.RUNAWAY)
    assert "Why: " in alert.message and "Production Key spent" in alert.message
    why = alert.message.split("Why: ", 1)[1]
    (notified,) = [r["body"] for r in webhook_receiver.received if r["path"] == "/notify"]
    assert why in notified["message"]  # the notification says the same why as the alert
    task = AgentTask.objects.get(alert=alert)
    assert task.kind == AgentTask.INVESTIGATE_SPIKE
    assert "### Why" in task.body and "rising since" in task.body
    assert "today's split by model and its factors arrive with tomorrow's activity" in task.body  # a runaway today
    assert task.evidence["explanation"]["key_rise"]["since"] is not None
    assert task.evidence["explanation"]["text"] == why  # one explanation on every surface
    posted = [r["body"] for r in webhook_receiver.received if r["path"] == "/agents"]
    ours = [p for p in posted if p["task"]["id"] == task.pk]  # the advisor's weekly task may be posted too
    assert ours[0]["event"] == "task.created"
    headers = {"Authorization": "Bearer op-token-abcdef"}
    for action, body in (("claim", {"agent": "spend-bot"}), ("complete", {"note": "capped the loop"})):
        answer = client.post(f"/api/tasks/{task.pk}/{action}", json.dumps(body), content_type="application/json",
                             headers=headers)  # fmt: skip
        assert answer.status_code == 200, answer.content
    shown = client.get("/api/tasks/?state=done", headers=headers).json()["tasks"]
    assert [(t["id"], t["claimed_by"]) for t in shown] == [(task.pk, "spend-bot")]
    events = [r["body"]["event"] for r in webhook_receiver.received
              if r["path"] == "/agents" and r["body"]["task"]["id"] == task.pk]  # fmt: skip
    assert events[-2:] == ["task.updated", "task.closed"]
