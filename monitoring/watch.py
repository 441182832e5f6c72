"""The spend watch between the scheduled checks: a runaway is caught within minutes, not at the next check.

Every WATCH_INTERVAL_MINUTES it asks GET /key for each configured key (free and light for OpenRouter) and
keeps the last hour of those readings in one WatchState row per key, rewritten in place: a quiet account
adds no credit-log rows. When the last hour's spend is far above the key's burn rate and, at that pace,
the money runs out within the forecast horizon, it runs the real check (which logs a reading for every
key), and evaluates the alerts with a RUNAWAY condition that names the keys and models behind it.
While a runaway alert is open, every watch logs a reading and re-evaluates it, so it resolves when the
pace falls back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from . import agent_webhook, alerts, drivers, forecast, monitor, notify, status
from .models import Alert, ApiKey, CreditLog, Level, WatchState
from .openrouter import Client, KeySnapshot, OpenRouterError

logger = logging.getLogger("monitoring")

# A pace this many times the burn rate that brings the end under the horizon is a runaway too.
HORIZON_FACTOR = 2.0
# One kept-alive connection for the frequent watches: no new TCP and TLS handshake every few minutes.
SESSION = requests.Session()


@dataclass
class Pace:
    """What one watch saw for one key over its window."""

    key: ApiKey
    snapshot: KeySnapshot
    spent: float  # USD over the window
    minutes: float  # the window's length
    recent: float | None = None  # USD/day over the last watch intervals: a runaway's true pace, sooner
    baseline: float | None = None  # the key's burn rate, USD/day (its status)
    remaining: float | None = None
    runaway: bool = False

    @property
    def rate(self) -> float | None:
        return self.spent / (self.minutes / 1440) if self.minutes > 0 else None

    @property
    def pace(self) -> float | None:
        """The faster of the window's and the recent rate: the pessimistic pace the warning quotes."""
        known = [r for r in (self.rate, self.recent) if r is not None]
        return max(known) if known else None

    @property
    def rise(self) -> float:
        """Spend above what the burn rate would have spent in the window."""
        expected = (self.baseline or 0.0) * self.minutes / 1440
        return max(self.spent - expected, 0.0)

    @property
    def days_left(self) -> float | None:
        return forecast.days_until_exhaustion(self.remaining, self.pace)


# --- readings ---------------------------------------------------------------------------------


def spend_rate(readings: list[tuple[datetime, float]]) -> tuple[float, float]:
    """(spend, minutes) over consecutive readings (a drop is a reset: forecast.spend_between)."""
    spent = sum(forecast.spend_between(a[1], b[1]) for a, b in zip(readings, readings[1:], strict=False))
    return spent, (readings[-1][0] - readings[0][0]).total_seconds() / 60


def remember(key: ApiKey, usage: float, now: datetime) -> tuple[float, float, float | None]:
    """Add a reading to the key's window; return (spend, minutes) over it and the recent rate (USD/day)."""
    window = timedelta(minutes=settings.WATCH_WINDOW_MINUTES)
    stale = window + timedelta(minutes=3 * max(settings.WATCH_INTERVAL_MINUTES, 1))
    try:
        state = key.watch_state  # read with the key (run_watch's select_related)
    except WatchState.DoesNotExist:
        state = WatchState.objects.create(key=key)
    readings = [(datetime.fromisoformat(at), value) for at, value in state.readings]
    readings = [(at, value) for at, value in readings if now - stale <= at < now]  # a gap starts afresh
    # Keep the newest reading at or before the window's start, so the window spans its whole length.
    older = [r for r in readings if r[0] <= now - window]
    readings = older[-1:] + [r for r in readings if r[0] > now - window] + [(now, usage)]
    state.readings = [[at.isoformat(), value] for at, value in readings]
    state.updated_at = now
    state.save(update_fields=["readings", "updated_at"])
    spent, minutes = spend_rate(readings)
    recent = []  # the last watch interval and the last two: the fastest is the pace a warning quotes
    for tail in (readings[-2:], readings[-3:]):
        tail_spent, tail_minutes = spend_rate(tail)
        if tail_minutes > 0:
            recent.append(tail_spent / (tail_minutes / 1440))
    return spent, minutes, max(recent, default=None)


def remaining_now(snapshot: KeySnapshot, last: CreditLog | None) -> float | None:
    """The tighter of the key's cap left (this reading) and the account balance (last check, less this key's
    spend since it: the watch does not ask /credits)."""
    known = [snapshot.limit_remaining] if snapshot.limit_remaining is not None else []
    if last is not None and last.account_balance is not None and last.usage is not None:
        known.append(last.account_balance - forecast.spend_between(last.usage, snapshot.usage))
    return min(known) if known else None


def measure(key: ApiKey, snapshot: KeySnapshot, now: datetime, runaway_open: bool) -> Pace:
    spent, minutes, recent = remember(key, snapshot.usage, now)
    pace = Pace(key, snapshot, spent, minutes, recent)
    if spent < settings.WATCH_MIN_USD and not runaway_open:
        return pace  # the common, quiet case: no query beyond the watch's own row
    key_status = status.build(now, keys=[key]).for_key(key)  # the key's burn rate, as every surface says it
    last = key_status.success if key_status else None
    if last is not None:
        pace.baseline = key_status.burn_rate
    pace.remaining = remaining_now(snapshot, last)
    pace.runaway = is_runaway(pace, already=runaway_open)
    return pace


def is_runaway(pace: Pace, already: bool = False) -> bool:
    """Enough spent (WATCH_MIN_USD in the window), at that pace out within the forecast horizon, and either
    many times the burn rate (WATCH_FACTOR; any pace while no rate is known) or, at HORIZON_FACTOR times it,
    under the horizon that the scheduled forecast (at the burn rate) does not see yet.

    An open runaway stays open at half the bars: the burn rate itself climbs while the runaway lasts.
    """
    share = 0.5 if already else 1.0
    if pace.spent < share * settings.WATCH_MIN_USD or pace.rate is None:
        return False
    many_times = not pace.baseline or pace.baseline <= 0 or pace.rate >= share * settings.WATCH_FACTOR * pace.baseline
    if pace.remaining is None:
        return many_times and bool(pace.baseline)  # no balance to measure the horizon against: the ratio alone
    days = pace.days_left
    if days is None or days >= settings.FORECAST_WARNING_DAYS:
        return False
    if many_times:
        return True
    scheduled = forecast.days_until_exhaustion(pace.remaining, pace.baseline)
    unseen = scheduled is None or scheduled >= settings.FORECAST_WARNING_DAYS
    return unseen and pace.rate >= share * HORIZON_FACTOR * pace.baseline


# --- what drove it ----------------------------------------------------------------------------


def runaway_condition(pace: Pace, paces: list[Pace], now: datetime) -> alerts.Condition:
    money = alerts.money
    if not pace.runaway:
        message = f"Spend back to {money(pace.rate or 0.0)}/day over the last {pace.minutes:.0f} min"
        return alerts.Condition(pace.key, Alert.RUNAWAY, Level.OK, message, pace.rate)
    times = f", {pace.rate / pace.baseline:.0f}x the {money(pace.baseline)}/day burn rate" if pace.baseline else ""
    lately = f", lately {money(pace.pace)}/day" if pace.pace > 1.2 * pace.rate else ""
    days = pace.days_left
    if days is None:  # no cap and no account balance known
        level, outlook = Level.WARNING, "the balance is unknown (no cap; OPENROUTER_MANAGEMENT_KEY reads the account)"
    else:
        level = Level.CRITICAL if days < settings.FORECAST_CRITICAL_DAYS else Level.WARNING
        left = f"{days * 24:.1f} hours" if days < 2 else f"{days:.1f} days"
        when = forecast.exhaustion_date(now, days)
        outlook = f"{money(pace.remaining)} left lasts {left} at this pace: may run out as early as "
        outlook += f"{when:%a %-d %b %H:%M} UTC"
    rises = [(p.key.display_name, p.rise, f"in {p.minutes:.0f} min") for p in paces]
    message = (
        f"Runaway: {money(pace.spent)} in {pace.minutes:.0f} min = {money(pace.rate)}/day{times}{lately}; {outlook}. "
        f"Behind it: {drivers.key_drivers(rises) or 'keys: unknown'}; {drivers.model_drivers(pace.key)}. "
        f"Why: {drivers.explain_spike(pace.key, now)['text']}"
    )
    return alerts.Condition(pace.key, Alert.RUNAWAY, level, message, pace.rate)


# --- the watch --------------------------------------------------------------------------------


def run_watch(now: datetime | None = None) -> list[Pace]:
    """One watch: GET /key per configured key; on a runaway (or while one is open) the real check and alerts."""
    now = now or timezone.now()
    configured = monitor.watched_keys()
    runaway = Alert.objects.open().filter(condition=Alert.RUNAWAY, key=OuterRef("pk"))
    found = ApiKey.objects.filter(hash__in=[w.hash for w in configured]).select_related("watch_state")
    known = {key.hash: key for key in found.annotate(runaway_open=Exists(runaway))}  # one query a watch
    open_runaways = {key.pk for key in known.values() if key.runaway_open}
    paces = []
    for watched in configured:
        key = known.get(watched.hash)
        if key is None:
            continue  # never checked yet: the scheduled check introduces it
        try:
            client = Client.from_settings(watched.token)
            client.session = SESSION
            snapshot = client.get_key()
        except OpenRouterError as exc:  # a failed check is the scheduled check's story; the watch stays light
            logger.info("Spend watch: GET /key for %s failed: %s", key.display_name, exc.message)
            continue
        paces.append(measure(key, snapshot, now, key.pk in open_runaways))
    acting = [p for p in paces if p.runaway or p.key.pk in open_runaways]
    if not acting:
        return paces
    for pace in acting:
        if pace.runaway:
            logger.warning("Spend watch: %s spends %.2f $/day over %.0f min", pace.key.display_name, pace.rate,
                           pace.minutes)  # fmt: skip
    statuses = monitor.check_all(now=now)  # the reading that backs the alert (and its explanation), for every key
    conditions = [runaway_condition(p, paces, now) for p in acting]
    try:
        alerts.evaluate(statuses, now, extra=conditions)
    finally:
        notify.deliver_pending(now)
        agent_webhook.deliver_pending(now)
    return paces
