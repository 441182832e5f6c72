"""The demo's month, made by the real job over a simulated clock, tells one story on every surface."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import channelmask, demo, forecast
from monitoring.models import (
    Activity,
    AgentTask,
    Alert,
    AlertEvent,
    ApiKey,
    CreditLog,
    Delivery,
    Level,
    TaskDelivery,
)
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

from .invariants import check_invariants, daily_disagreements, read_surfaces

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

TOKEN = "demo-token"


@pytest.fixture
def demo_month(settings):
    """The demo seeded up to now, and the live simulator standing where its month ends (as runapp starts it)."""
    now = timezone.now()
    settings.CREDITMON_DEMO = True
    settings.API_TOKEN = TOKEN
    with demo.inbox() as channel:
        settings.NOTIFY_URLS = channel
        demo.seed(now, notify_url=channel)
        month = demo.Month(now)
        live = month.simulator().start()
        month.apply(live, now, live=True)
        settings.OPENROUTER_BASE_URL = live.url
        settings.OPENROUTER_API_KEY = PROD_KEY
        settings.OPENROUTER_API_KEYS = ""
        settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
        settings.OPENROUTER_MAX_RETRIES = 0
        try:
            yield month
        finally:
            live.stop()


def test_the_demo_month_tells_one_story_on_every_surface(demo_month, client, django_user_model, settings):
    client.force_login(django_user_model.objects.get(username=demo.DEMO_USERNAME))
    found = read_surfaces(client, TOKEN)
    check_invariants(found)
    for surface in ("status", "json", "api", "financial"):  # the demo's own figures, where the issue saw them broken
        figures = found[surface]
        assert set(figures["keys"]) == {"Production Key", "Dev Key"}, surface
        assert figures["account"]["rate"] is not None, surface
        for name, key in figures["keys"].items():
            assert key["rate7"] is not None and key["date"] is not None and key["earliest"] is not None, (surface, name)
    assert found["financial"]["keys"]["Production Key"]["mtd"] > 0
    page = client.get("/financial/").content.decode()  # the page says why its two daily spends could differ
    assert "a bar can differ from OpenRouter's activity below" in page

    # The same key's daily spend from its checks and from its activity agree on every completed day.
    now = timezone.now()
    for key in ApiKey.objects.watched():
        assert daily_disagreements(key, now, tolerance=0.01) == {}, key.name
        assert Activity.objects.filter(api_key_hash=key.hash).values("date").distinct().count() >= 28

    # A weekend pattern on both keys: weekend days spend well under weekdays, in the checks and the activity.
    for key in ApiKey.objects.watched():
        rows = Activity.objects.filter(api_key_hash=key.hash).values_list("date", "usage")
        by_day: dict = {}
        for day, usage in rows:
            by_day[day] = by_day.get(day, 0.0) + usage
        weekday = [v for d, v in by_day.items() if d.weekday() < 5]
        weekend = [v for d, v in by_day.items() if d.weekday() >= 5]
        assert max(weekend) < 0.5 * min(weekday), key.name

    # A top-up: the account bought credits and the Production Key's cap was raised, twelve days ago.
    prod = ApiKey.objects.get(is_primary=True)
    logs = CreditLog.objects.filter(key=prod, ok=True).order_by("timestamp")
    credits = logs.values_list("timestamp", "account_credits")
    assert [round(a) for _, a in forecast.topups(list(credits))] == [demo.ACCOUNT_PURCHASE]
    limits = logs.values_list("timestamp", "credit_limit")
    assert [round(a) for _, a in forecast.topups(list(limits))] == [demo.TOPUP_CAP_RAISE]

    # "Usage Today" from OpenRouter and the spike alert's "Spent $X today" are the same money.
    spike = Alert.objects.open().get(condition=Alert.SPIKE)
    spent = float(re.match(r"Spent \$([\d.]+) today", spike.message).group(1))
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert spent == pytest.approx(demo_month.usage(PROD_KEY, now) - demo_month.usage(PROD_KEY, midnight), abs=0.02)
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("checkcredits", "--verbose", stdout=out, stderr=StringIO())
    told = float(re.search(r"Usage Today: \$([\d.]+)", out.getvalue()).group(1))  # the primary key's, from /key
    assert told == pytest.approx(spent, abs=0.05)  # the same money, spent a few seconds later at most
    assert "models today: unknown until OpenRouter publishes the day" in spike.message
    assert "needs OPENROUTER_MANAGEMENT_KEY" not in "".join(AlertEvent.objects.values_list("message", flat=True))

    # One seeding (the month takes a while to make): the Alerts page's story is checked on the same data.
    alerts_page_shows_a_resolved_past_alert_delivered_to_its_listed_channel(client, settings.NOTIFY_URLS)


def alerts_page_shows_a_resolved_past_alert_delivered_to_its_listed_channel(client, url: str):
    page = client.get("/alerts/").content.decode()
    channel = re.search(r'Notification channels:\s*<code class="channel">([^<]+)</code>', page)
    # The page shows the demo's inbox as every person sees a channel: masked ("/demo-inbox" is a secret-sized path).
    listed = channel and channel.group(1) == channelmask.mask_url(url)
    assert "/demo-inbox" in url and listed, "the demo's channel is listed"

    past = Alert.objects.filter(resolved_at__isnull=False, key__is_primary=True, acknowledged_at__isnull=False)
    told = [a for a in past if Delivery.objects.filter(event__alert=a).exists()]  # a notified alert, not a quiet one
    story = next(a for a in told if {"opened", "escalated", "acknowledged", "resolved"} <= set(kinds(a)))
    assert story.resolved_at < timezone.now() - timedelta(days=11)  # resolved by the top-up
    deliveries = Delivery.objects.filter(event__alert=story)
    assert set(deliveries.values_list("status", flat=True)) == {Delivery.SENT}
    assert set(deliveries.values_list("event__kind", flat=True)) >= {"opened", "escalated"}
    assert set(deliveries.values_list("channel", flat=True)) == {channel.group(1)}
    resolved = story.events.get(kind=AlertEvent.RESOLVED)
    assert f"{story.get_condition_display()}</strong>" in page and resolved.message in page  # shown in the history

    spike = Alert.objects.open().get(condition=Alert.SPIKE)
    assert spike.level == Level.WARNING and spike.acknowledged_at is None  # today's spike, open to act on

    # Agent tasks: today's spike's task open; the top-up tasks claimed and completed by the demo's agent.
    assert AgentTask.objects.get(alert=spike).state == AgentTask.OPEN
    done = AgentTask.objects.filter(kind=AgentTask.TOP_UP, state=AgentTask.DONE, claimed_by=demo.DEMO_AGENT)
    assert done.exists() and all(t.note.startswith("Bought $") and t.done_at for t in done)
    assert "budget-agent" in page
    assert Delivery.objects.filter(event__alert=spike, status=Delivery.SENT, channel=channel.group(1)).exists()
    # The tasks' chain reached the demo's inbox too (created, claimed, done), every post delivered.
    posted = TaskDelivery.objects.filter(task__in=done)
    assert {d.event for d in posted} >= {"task.created", "task.updated", "task.closed"}
    assert set(TaskDelivery.objects.values_list("status", flat=True)) == {TaskDelivery.SENT}


def kinds(alert: Alert) -> list[str]:
    return list(alert.events.order_by("created", "id").values_list("kind", flat=True))
