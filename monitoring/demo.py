"""The demo's month, made by the product itself: the simulated OpenRouter spends along a pattern (busier on
weekdays and in working hours, on both keys), and the real scheduled job (monitoring.tasks.monitor_job) checks
it every few hours on a simulated clock, syncs the activity, opens and resolves alerts and delivers their
notifications to a local inbox that NOTIFY_URLS names. Nothing is written by hand, so the stored checks, the
activity, the alerts and the simulator the live demo keeps checking agree by construction.

The month holds a top-up twelve days ago (the account buys credits and the Production Key's cap is raised), the
alert before it (the key running out: opened, escalated, acknowledged by the demo login, resolved by the top-up,
with its deliveries) and today's spend spike on the Production Key, left open to acknowledge, snooze and undo.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.test.utils import override_settings

from . import agent_tasks, alerts, backtest, tasks
from .models import AgentTask, Alert, CreditLog, Level
from .simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY, Clock, Simulator, iso

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "creditmon-demo"
STEP = timedelta(hours=4)  # a reading every few hours: the month in about 180 real runs
HOUR = timedelta(hours=1)
LEAD_DAYS = 32  # the world before the first check, so the month's and week's usage windows have a start


@dataclass(frozen=True)
class DemoKey:
    token: str
    name: str
    weekday_per_day: float  # spend on a working day; weekends spend WEEKEND_SHARE of it
    spent_before: float  # usage when the world begins


KEYS = (DemoKey(PROD_KEY, "Production Key", 4.0, 0.0), DemoKey(DEV_KEY, "Dev Key", 0.5, 0.0))
WEEKEND_SHARE = 0.35
DEV_LIMIT = 50.0
TOPUP_DAYS_AGO = 12
TOPUP_CAP_RAISE = 120.0  # the Production Key's cap raised by this much at the top-up...
ACCOUNT_CREDITS, ACCOUNT_PURCHASE = 300.0, 150.0  # ...when the account buys this much more
ACCOUNT_SPENT_BEFORE = 40.0  # the account's usage when the world begins (its keys' and older keys')
CAP_LEFT_AT_TOPUP = 3.0  # about a day of spend left on the key's cap when it is topped up: the alert is critical
SPIKE_USD, SPIKE_HOURS = 12.0, 3  # today's extra spend on the Production Key, in its last hours


def spend_weight(when: datetime) -> float:
    """Busier on weekdays (UTC) and in working hours, so the charts look like a real service."""
    weekday = 1.0 if when.weekday() < 5 else WEEKEND_SHARE
    return weekday * (1.0 + 0.5 * math.sin((when.hour - 9) / 24 * 2 * math.pi))


class Month:
    """The demo world up to `end`: each key's usage at any time (hourly spend along the pattern, plus today's
    spike), its cap and the account's credits and usage. Pure: the same `end` gives the same world, so the
    live simulator (runapp) and the seeded history (seeddemo), made in two processes, agree."""

    def __init__(self, end: datetime, days: int = 30):
        self.end = end.astimezone(UTC)
        self.start = self.end - timedelta(days=days)  # the first check
        self.topup_at = self.end - timedelta(days=TOPUP_DAYS_AGO)
        hours = (days + LEAD_DAYS) * 24
        self.origin = self.end - HOUR * hours
        midnight = self.end.replace(hour=0, minute=0, second=0, microsecond=0)
        spike_start = max(midnight, self.end - timedelta(hours=SPIKE_HOURS))
        self.cumulative: dict[str, list[float]] = {}
        for key in KEYS:
            usage, series = key.spent_before, [key.spent_before]
            for n in range(hours):
                begins = self.origin + HOUR * n
                spent = key.weekday_per_day / 24 * spend_weight(begins)
                if key.token == PROD_KEY:  # the spike, spread over its hours
                    overlap = (min(begins + HOUR, self.end) - max(begins, spike_start)).total_seconds()
                    spent += SPIKE_USD * max(overlap, 0.0) / max((self.end - spike_start).total_seconds(), 1.0)
                usage += spent
                series.append(usage)
            self.cumulative[key.token] = series
        # About a day of spend left on the cap when the top-up comes, in whole dollars.
        self.cap_before = math.ceil(self.usage(PROD_KEY, self.topup_at) + CAP_LEFT_AT_TOPUP)

    def usage(self, token: str, when: datetime) -> float:
        series = self.cumulative[token]
        position = min(max((when - self.origin) / HOUR, 0.0), len(series) - 1.0)
        n = min(int(position), len(series) - 2)
        return series[n] + (series[n + 1] - series[n]) * (position - n)

    def limit(self, token: str, when: datetime) -> float:
        if token != PROD_KEY:
            return DEV_LIMIT
        return self.cap_before + (TOPUP_CAP_RAISE if when >= self.topup_at else 0.0)

    def credits(self, when: datetime) -> float:
        return ACCOUNT_CREDITS + (ACCOUNT_PURCHASE if when >= self.topup_at else 0.0)

    def account_usage(self, when: datetime) -> float:
        """Every key draws on the account: its usage is theirs (from when the world begins) and what came before."""
        return ACCOUNT_SPENT_BEFORE + sum(self.usage(k.token, when) for k in KEYS)

    def daily_spend(self, token: str) -> dict[date, float]:
        """Spend per completed UTC day, what the simulated /activity serves: the same money the checks see."""
        first = (self.origin + timedelta(days=1)).date()
        days = [first + timedelta(days=n) for n in range((self.end.date() - first).days)]
        found = {}
        for day in days:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            found[day] = self.usage(token, midnight + timedelta(days=1)) - self.usage(token, midnight)
        return found

    def rate(self, token: str, when: datetime) -> float:
        """$/day at `when` along the pattern (the spike left out): the live simulator's pace after `end`."""
        key = next(k for k in KEYS if k.token == token)
        return key.weekday_per_day * spend_weight(when)

    def state(self, when: datetime, live: bool = False) -> dict:
        """The simulator's state at `when`, JSON-able (Simulator.load reads it); `live`: it keeps spending at the
        pattern's pace after it, and its activity is the world's days."""
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        week = midnight - timedelta(days=midnight.weekday())
        month = midnight.replace(day=1)
        keys = {}
        for key in KEYS:
            usage = self.usage(key.token, when)
            keys[key.token] = {
                "usage": usage,
                "usage_daily": usage - self.usage(key.token, midnight),
                "usage_weekly": usage - self.usage(key.token, week),
                "usage_monthly": usage - self.usage(key.token, month),
                "limit": self.limit(key.token, when),
                "spend_per_day": self.rate(key.token, when) if live else 0.0,
                "last_used_at": iso(when - timedelta(minutes=3)),
            }
        state = {"keys": keys, "account": [self.credits(when), self.account_usage(when)]}
        if live:
            state["daily"] = {
                k.token: {day.isoformat(): spent for day, spent in self.daily_spend(k.token).items()} for k in KEYS
            }
        return state

    def apply(self, sim: Simulator, when: datetime, live: bool = False) -> None:
        """Set the simulator to the world at `when`."""
        sim.load(self.state(when, live))

    def simulator(self, clock=None, **options) -> Simulator:
        """A simulated OpenRouter (not started) standing where the world is at `end`, its activity the world's."""
        sim = Simulator("steady", now=clock, **options)
        for key in KEYS:
            sim.set_daily_spend(key.token, self.daily_spend(key.token))
        return sim


def inbox_url(port: int) -> str:
    return f"json://127.0.0.1:{port}/demo-inbox"


DEMO_WEBHOOK_SECRET = "creditmon-demo-webhook"  # signs the demo's task posts to its own local inbox: no secret


def webhook_url(notify_url: str) -> str:
    """The demo's agent-task webhook: the same local inbox as its notifications, posted to over plain HTTP."""
    return "http://" + notify_url.split("://", 1)[1]


@contextmanager
def inbox() -> Iterator[str]:
    """A local notification inbox on any free port, for a month seeded without the running demo's channel."""
    with backtest.receiver() as server:
        yield inbox_url(server.server_address[1])


def demo_user():
    user_model = get_user_model()
    user = user_model.objects.filter(username=DEMO_USERNAME).first()
    return user or user_model.objects.create_superuser(DEMO_USERNAME, "demo@example.com", DEMO_PASSWORD)


def acknowledge_the_past(month: Month, when: datetime, user) -> None:
    """Before the top-up, the demo login acknowledges what pages about the Production Key (as an operator would)."""
    if when >= month.topup_at:
        return
    critical = Alert.objects.open().filter(level=Level.CRITICAL, acknowledged_at__isnull=True, key__is_primary=True)
    for alert in critical:
        alerts.acknowledge(alert, user, now=when + timedelta(minutes=40))


DEMO_AGENT = "budget-agent"  # the agent runner the demo pretends works the tasks


def claim_the_top_ups(month: Month, when: datetime) -> None:
    """Before the top-up, an agent claims the Production Key's top-up tasks as they open (renewing its claim)."""
    if when >= month.topup_at:
        return
    for task in AgentTask.objects.in_state(AgentTask.OPEN, when).filter(kind=AgentTask.TOP_UP, key__is_primary=True):
        agent_tasks.claim(task.pk, DEMO_AGENT, by=DEMO_USERNAME, now=when + timedelta(minutes=20))


def complete_the_top_ups(month: Month, when: datetime) -> None:
    """At the top-up the agent completes what it claimed, before the check that sees the money resolves the alert."""
    if when < month.topup_at:
        return
    note = f"Bought ${ACCOUNT_PURCHASE:.0f} of credits and raised the Production Key's cap by ${TOPUP_CAP_RAISE:.0f}"
    for task in AgentTask.objects.filter(state=AgentTask.CLAIMED, claimed_by=DEMO_AGENT):
        agent_tasks.complete(task.pk, note, by=DEMO_AGENT, now=month.topup_at)


def times(month: Month, step: timedelta) -> list[datetime]:
    """Every `step` on the UTC clock, a minute before the hour (a reading closes each UTC day, so a day's checks
    and its activity cover the same hours), then one at the end."""
    first = month.start.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(minutes=1)
    found, when = [], first
    while when < month.end:
        if when >= month.start:
            found.append(when)
        when += step
    return [*found, month.end]


def seed(now: datetime, days: int = 30, step: timedelta = STEP, notify_url: str | None = None) -> int:
    """Run the real job over the demo's month into the configured database; returns the checks written.

    `notify_url`: the channel the deliveries go to (the running demo's inbox); None: a local inbox for the run.
    """
    month = Month(now, days)
    clock = Clock(month.start)
    sim = month.simulator(clock)
    month.apply(sim, month.start)
    with sim, _channel(notify_url) as url, backtest.quiet_logs():
        overrides = {
            "OPENROUTER_BASE_URL": sim.url,
            "OPENROUTER_API_KEY": PROD_KEY,
            "OPENROUTER_API_KEYS": "",
            "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
            "OPENROUTER_MAX_RETRIES": 0,
            "NOTIFY_URLS": url,
            "AGENT_WEBHOOK_URL": webhook_url(url),  # the tasks' chain is seen too: created, claimed, done
            "AGENT_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
            "HEARTBEAT_URL": "",
            "HEARTBEAT_FAIL_URL": "",
            "RETENTION_DAYS": 0,
        }
        with override_settings(**overrides):
            user = demo_user()
            for when in times(month, step):
                clock.at = when
                month.apply(sim, when)
                complete_the_top_ups(month, when)
                tasks.monitor_job(now=when)
                acknowledge_the_past(month, when, user)
                claim_the_top_ups(month, when)
    return CreditLog.objects.count()


@contextmanager
def _channel(notify_url: str | None) -> Iterator[str]:
    if notify_url:
        yield notify_url
        return
    with inbox() as url:
        yield url
