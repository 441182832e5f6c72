"""Invariants of the figures over generated worlds (Hypothesis), read on every surface: the status object,
`checkcredits --json --all`, /api/status/ and the Financial page.

A world is two keys spending along a weekday pattern (any rates, weekend shares, a spike today), other keys'
spend on the same account, caps and a balance, checked every few hours for a few days: its checks are the
rows a real check writes, its account activity what OpenRouter would serve, and the simulated OpenRouter
stands where the world ends (checkcredits checks it once more)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from monitoring import alerts, status
from monitoring.models import (
    Activity,
    Alert,
    AlertEvent,
    ApiKey,
    CreditLog,
    DailyFigure,
    Delivery,
    HourlyFigure,
    Level,
)
from monitoring.openrouter import key_hash
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY

from .invariants import check_invariants, read_surfaces

pytestmark = pytest.mark.django_db

TOKEN = "invariants-token"
NAMES = {PROD_KEY: "Production Key", DEV_KEY: "Dev Key"}

key_world = st.fixed_dictionaries(
    {
        "weekday": st.floats(0.0, 40.0),  # $/day on a working day
        "weekend_share": st.floats(0.0, 1.0),
        "cap_left": st.floats(0.5, 400.0),  # what is left of its cap at the end
    }
)
worlds = st.fixed_dictionaries(
    {
        "days": st.integers(2, 12),
        "hours": st.sampled_from([1, 2, 3, 4, 6, 8, 12]),
        "prod": key_world,
        "dev": key_world,
        "others": st.floats(0.0, 10.0),  # other keys' spend on the account, $/day
        "spike": st.floats(0.0, 30.0),  # the Production Key's extra spend today
        "balance": st.floats(0.5, 800.0),  # the account balance at the end
    }
)


def rate(key: dict, when: datetime) -> float:
    share = 1.0 if when.weekday() < 5 else key["weekend_share"]
    return key["weekday"] * share * (1.0 + 0.5 * math.sin((when.hour - 9) / 24 * 2 * math.pi))


def build(world: dict, now: datetime) -> None:
    """The world's checks (every `hours` on the UTC clock, a minute before the hour, and one now) and the
    account's activity for its completed days, written as the checks and the sync write them."""
    for model in (Delivery, AlertEvent, Alert, Activity, DailyFigure, HourlyFigure, CreditLog, ApiKey):
        model.objects.all().delete()
    step = timedelta(hours=world["hours"])
    first = (now - timedelta(days=world["days"])).replace(minute=0, second=0, microsecond=0) - timedelta(minutes=1)
    times = [first + step * n for n in range(int((now - first) / step) + 1) if first + step * n < now] + [now]
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    usage = {PROD_KEY: 0.0, DEV_KEY: 0.0}
    account_usage = 50.0
    series = []
    for before, when in zip([times[0], *times], times, strict=False):
        days = (when - before).total_seconds() / 86400
        spent = {token: rate(world["prod" if token == PROD_KEY else "dev"], before) * days for token in usage}
        if when > midnight:  # today's spike, spread over today's readings
            spent[PROD_KEY] += (
                world["spike"] * (when - max(before, midnight)).total_seconds() / (now - midnight).total_seconds()
            )
        for token in usage:
            usage[token] += spent[token]
        account_usage += sum(spent.values()) + world["others"] * days
        series.append((when, dict(usage), account_usage))
    credits = account_usage + world["balance"]
    caps = {PROD_KEY: usage[PROD_KEY] + world["prod"]["cap_left"], DEV_KEY: usage[DEV_KEY] + world["dev"]["cap_left"]}
    keys = {
        token: ApiKey.objects.create(hash=key_hash(token), name=name, is_primary=token == PROD_KEY, first_seen=first)
        for token, name in NAMES.items()
    }
    rows = []
    for when, used, account in series:
        for token, key in keys.items():
            left = caps[token] - used[token]
            rows.append(
                CreditLog(
                    timestamp=when, key=key, ok=True, label=key.name, usage=used[token], credit_limit=caps[token],
                    limit_remaining=left, remaining=min(left, credits - account), is_free_tier=False,
                    is_management_key=False, account_credits=credits, account_usage=account,
                    account_balance=credits - account, raw_response="{}", duration_ms=1,
                )
            )  # fmt: skip
    CreditLog.objects.bulk_create(rows)
    CreditLog.objects.recompute_spend_totals()
    DailyFigure.objects.rebuild()
    HourlyFigure.objects.rebuild()
    # The account's activity: its spend per completed UTC day (the readings close each day at 23:59).
    by_day: dict = {}
    for (_, _, earlier), (when, _, later) in zip(series, series[1:], strict=False):
        by_day[when.date()] = by_day.get(when.date(), 0.0) + later - earlier
    Activity.objects.bulk_create(
        Activity(date=day, api_key_hash="", model="openai/gpt-4.1", endpoint_id="e", usage=spent, final=True)
        for day, spent in by_day.items()
        if day < now.date()
    )
    return caps, credits, series[-1]


@pytest.fixture
def surfaces(sim, settings, client, django_user_model):
    settings.API_TOKEN = TOKEN
    settings.NOTIFY_URLS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.CREDITMON_TIME_ZONE = "UTC"
    sim.set_scenario("management")
    client.force_login(django_user_model.objects.create_superuser("ops", password="x" * 16))
    return sim, client


@hypothesis_settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(world=worlds)
def test_every_surface_keeps_the_invariants_in_any_world(surfaces, world):
    sim, client = surfaces
    now = timezone.now()
    caps, credits, (_, usage, account_usage) = build(world, now)
    for token in (PROD_KEY, DEV_KEY):  # OpenRouter stands where the world ends: checkcredits checks it once more
        sim.set_key(token, usage=usage[token], limit=caps[token], limit_remaining=None, spend_per_day=0)
    sim.set_account(credits, account_usage)

    found = read_surfaces(client, TOKEN)
    check_invariants(found)

    # Every average names its window and source; a spike names its baseline; today's models are unknown yet.
    payload = status.build(timezone.now()).as_dict()
    for figures in [payload["account"], *payload["keys"]]:
        if figures["burn_rate_per_day"] is not None and not isinstance(figures["burn_rate_per_day"], dict):
            assert figures["burn_rate_window"], figures
    for key in payload["keys"]:
        if key["burn_rate"] is not None:
            assert key["burn_rate_window"] and key["burn_rate_source"] in ("checks", "activity"), key
    alerts.evaluate(status.build(timezone.now()), timezone.now())
    for spike in Alert.objects.filter(condition=Alert.SPIKE):
        assert "/day average over the " in spike.message and "before today (logged checks)" in spike.message
        if spike.level != Level.OK:
            assert "models today: unknown" in spike.message or "models: unknown" in spike.message
