"""Notification delivery through Apprise; every attempt is a Delivery row.

NOTIFY_URLS holds Apprise URLs separated by spaces or newlines. Each may start with the levels it
receives, Apprise's tag style: `critical=sms://...`, `critical,warning=mailto://...`; no prefix
means every level. Deliveries are written when an alert event happens (in its transaction) and
sent by `deliver_pending()`, which also retries failed ones on the next run: a failing channel is
a row with its error, never an exception that stops the check or the other channels.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from . import report, status
from .channelmask import mask_urls
from .logredact import redact
from .models import Alert, AlertEvent, Delivery, Level

logger = logging.getLogger("monitoring")

LEVEL_TAGS = ("ok", "warning", "critical", "unknown")
# "critical,warning=" before a URL's scheme; a URL's own "=" (in its query) comes after "://".
TAG_PREFIX = re.compile(r"^(?P<tags>[A-Za-z0-9_,-]+)=(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.*)$")
NOTIFY_TYPES = {Level.OK: "success", Level.WARNING: "warning", Level.CRITICAL: "failure", Level.UNKNOWN: "warning"}
# Chat mentions a key label or message could carry: @everyone/@here/@channel/@room/@all (Discord, Slack,
# Matrix, Mattermost), <@123>, <@&role>, <#chan>, <!channel>, <!subteam^id> (Discord, Slack markup).
# An address such as ops@here.example is left alone: the @ of a mention does not follow a word.
MENTIONS = re.compile(r"(?<![\w.])@(?=(?:everyone|here|channel|room|all)\b)|<(?=[@!#])", re.IGNORECASE)
ZERO_WIDTH_SPACE = "\u200b"


@dataclass(frozen=True)
class Channel:
    """One configured Apprise URL. `url` holds secrets: show `masked`, store `id`."""

    url: str = field(repr=False)
    masked: str
    id: str
    tags: frozenset[str] = frozenset()
    error: str = ""  # set when the URL cannot be used; its deliveries fail with this reason

    @property
    def levels(self) -> str:
        """For pages: which levels it receives."""
        return ", ".join(sorted(self.tags)) if self.tags else "every level"

    def receives(self, event: AlertEvent) -> bool:
        if event.kind == AlertEvent.TEST or not self.tags:
            return True
        # A resolution or de-escalation also reaches the channels that heard the worse news.
        wanted = {Level(event.level).label.lower()}
        if event.previous_level is not None:
            wanted.add(Level(event.previous_level).label.lower())
        return bool(self.tags & wanted)


def channel_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def parse_urls(text: str) -> list[Channel]:
    entries: dict[str, tuple[frozenset[str], str]] = {}  # URL -> (tags, error), first mention kept
    for item in text.split():
        tags: frozenset[str] = frozenset()
        error = ""
        match = TAG_PREFIX.match(item)
        if match:
            tags = frozenset(t.strip().lower() for t in match["tags"].split(",") if t.strip())
            item = match["url"]
            unknown = sorted(tags - set(LEVEL_TAGS))
            if unknown:
                error = f"unknown level tag {', '.join(unknown)} (use {', '.join(LEVEL_TAGS)})"
        entries.setdefault(item, (tags, error))
    found = []
    for (url, (tags, error)), masked in zip(entries.items(), mask_urls(list(entries)), strict=True):
        if not error and (masked.endswith("://…") or masked == "(not a URL)"):
            error = "not a URL Apprise can use (see https://github.com/caronc/apprise/wiki)"
        found.append(Channel(url=url, masked=masked, id=channel_id(url), tags=tags, error=error))
    return found


def channels() -> list[Channel]:
    """The configured channels, for sending and (masked) for the pages."""
    return parse_urls(settings.NOTIFY_URLS)


def mask_secrets(text: str, channel: Channel) -> str:
    """Hide the parts of the channel's URL that Apprise's privacy form hides, and any API key."""
    text = text.replace(channel.url, channel.masked)
    secret_parts = {p for p in re.split(r"[/:@?&=#]+", channel.url) if len(p) >= 4 and p not in channel.masked}
    if urlsplit(channel.url).password:
        secret_parts.add(urlsplit(channel.url).password)
    for part in sorted(secret_parts, key=len, reverse=True):
        text = text.replace(part, "****")
    return redact(text)


# --- what is said ---------------------------------------------------------------------------


def held_back(event: AlertEvent, now: datetime) -> bool:
    """Silenced by an acknowledgement or a snooze. These stop reminders, not escalations: a worse level
    is held back only by an acknowledgement given after it happened."""
    alert = event.alert
    if alert is None or not alert.is_silenced(now):
        return False
    if event.kind == AlertEvent.ESCALATED:
        return alert.acknowledged_at is not None and alert.acknowledged_at > event.created
    return True


def needs_notification(event: AlertEvent) -> bool:
    """Transitions and reminders notify; for an acknowledged or snoozed alert, only an escalation."""
    if event.kind not in AlertEvent.NOTIFYING_KINDS:
        return False
    return not held_back(event, event.created)


ACTIONS = {
    Alert.BALANCE: "Top up the credits: {topup}",
    Alert.FORECAST: "Top up before it runs out, or reduce spending: {topup}",
    Alert.SPIKE: "Check which app or model is spending (Financial page); top up if needed: {topup}",
    Alert.FAILURES: "Check that the key is valid ({keys}) and that OpenRouter is reachable; see the worker log.",
    Alert.STALE: "Check that the worker (manage.py qcluster) is running and the checks succeed; see its log.",
    Alert.KEY_LIMIT: "Raise the key's limit ({keys}) or wait for its reset.",
    Alert.BUDGET: "Review this month's spending against the budget; top up if needed: {topup}",
    Alert.EXPIRY: "Create a new key before this one expires: {keys}",
    Alert.RUNAWAY: "Stop what is spending (the keys and models named above), or top up if it must go on: {topup}",
}


def _figures(alert: Alert, when: datetime) -> list[str]:
    """Balance, burn rate and days left as the status saw them when the event happened."""
    found = status.build(when, keys=[alert.key] if alert.key is not None else [])
    if alert.key is None:
        return report.account_block(found) if found.account.known else []
    key_status = found.for_key(alert.key)
    log = key_status.success if key_status else None
    if log is None:
        return ["Balance: unknown (no successful check yet)"]
    balance = f"Balance: {log.remaining_text}" if log.remaining is not None else "Balance: unknown"
    lines = [balance, report.burn_rate_line(key_status), report.days_left_line(key_status)]
    return [*lines, f"Last check: {log.timestamp:%Y-%m-%d %H:%M} UTC"]


def neutralise_mentions(text: str) -> str:
    """A zero-width space after the @ or < of a chat mention: it reads the same and pings no one."""
    return MENTIONS.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, text)


def links(alert: Alert) -> list[str]:
    """Links back to the dashboard (the Alerts page, the key's Financial page) when SITE_URL is set."""
    if not settings.SITE_URL:
        return []
    found = [f"Alerts: {settings.SITE_URL}{reverse('monitoring-alerts')}#alert-{alert.pk}"]
    if alert.key is not None:
        found.append(f"Financial: {settings.SITE_URL}{reverse('monitoring-financial')}?key={alert.key.pk}")
    return ["", *found]


def render(event: AlertEvent) -> tuple[str, str, str]:
    """Title, body and Apprise notify type for one event, mentions neutralised."""
    title, body, notify_type = _render(event)
    return neutralise_mentions(title), neutralise_mentions(body), notify_type


def _render(event: AlertEvent) -> tuple[str, str, str]:
    if event.kind == AlertEvent.TEST:
        title = "creditmon test notification"
        body = (
            f"A test notification from creditmon, sent by {event.user or 'an administrator'} "
            f"at {event.created:%Y-%m-%d %H:%M} UTC.\nIf you can read this, the channel works."
        )
        return title, body, "info"
    alert = event.alert
    who = alert.key.display_name if alert.key else "Account"
    what = alert.get_condition_display() + (f" ({alert.subject})" if alert.subject else "")
    level = Level(event.level).label
    previous = Level(event.previous_level).label if event.previous_level is not None else ""
    if event.kind == AlertEvent.RESOLVED:
        tag, happened = "RESOLVED", f"Resolved (was {previous}): {event.message}"
    elif event.kind == AlertEvent.ESCALATED:
        tag, happened = level, f"Escalated from {previous} to {level}: {event.message}"
    elif event.kind == AlertEvent.DEESCALATED:
        tag, happened = level, f"Eased from {previous} to {level}: {event.message}"
    elif event.kind == AlertEvent.REMINDER:
        tag, happened = f"REMINDER {level}", f"Still open since {alert.opened_at:%Y-%m-%d %H:%M} UTC: {event.message}"
    else:
        tag, happened = level, f"{level}: {event.message}"
    lines = [happened, "", *_figures(alert, event.created), ""]
    if event.kind == AlertEvent.RESOLVED:
        lines.append("Nothing to do.")
    else:
        action = ACTIONS.get(alert.condition, "See the Alerts page.")
        urls = {"topup": settings.OPENROUTER_TOPUP_URL, "keys": settings.OPENROUTER_KEYS_URL}
        lines.append("What to do: " + action.format(**urls))
        lines.append("Acknowledge or snooze it on the Alerts page to stop reminders.")
    lines += links(alert)
    notify_type = NOTIFY_TYPES[Level.OK] if event.kind == AlertEvent.RESOLVED else NOTIFY_TYPES[Level(event.level)]
    return f"[{tag}] {who}: {what}", "\n".join(lines).strip(), notify_type


# --- sending --------------------------------------------------------------------------------


def queue(event: AlertEvent, only: list[Channel] | None = None) -> list[Delivery]:
    """One pending Delivery per channel that receives this event (call inside the event's transaction)."""
    targets = only if only is not None else [c for c in channels() if c.receives(event)]
    return [
        Delivery.objects.create(event=event, channel=c.masked[:500], channel_id=c.id, created=event.created)
        for c in targets
    ]


def send(channel: Channel, title: str, body: str, notify_type: str) -> tuple[bool, str]:
    """One Apprise notification to one channel: (sent, error captured from Apprise's log)."""
    import apprise

    if channel.error:
        return False, channel.error
    instance = apprise.Apprise()
    if not instance.add(channel.url):
        return False, "not a URL Apprise can use"
    failure = ""
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            result = instance.notify(title=title, body=body, notify_type=notify_type)
        except Exception as exc:  # a plugin bug is this channel's failure, not the run's
            result, failure = False, f"{type(exc).__name__}: {exc}"
        log_text = captured.getvalue().strip()
    if result:
        return True, ""
    error = "; ".join(line for line in [failure, *log_text.splitlines()] if line.strip())
    return False, mask_secrets(error or "Apprise reported a failure without a reason", channel)[:2000]


def attempt(delivery: Delivery, channel: Channel | None, now: datetime) -> Delivery:
    """Claim the delivery (so an overlapping run cannot send it too), send it, record the result."""
    claimed = Delivery.objects.filter(pk=delivery.pk, status=delivery.status, attempts=delivery.attempts).update(
        attempts=F("attempts") + 1, last_attempt_at=now
    )
    if not claimed:
        return delivery
    delivery.attempts += 1
    delivery.last_attempt_at = now
    event = delivery.event
    if channel is None:
        ok, error, ms = False, "channel no longer in NOTIFY_URLS: not retried", 0
        delivery.attempts = max(delivery.attempts, settings.NOTIFY_MAX_ATTEMPTS)
    elif held_back(event, now):
        ok, error, ms = False, "not sent: the alert was acknowledged or snoozed before delivery", 0
        delivery.attempts = max(delivery.attempts, settings.NOTIFY_MAX_ATTEMPTS)
    else:
        title, body, notify_type = render(event)
        started = time.monotonic()
        ok, error = send(channel, title, body, notify_type)
        ms = int((time.monotonic() - started) * 1000)
    delivery.status = Delivery.SENT if ok else Delivery.FAILED
    delivery.error, delivery.duration_ms = error, ms
    delivery.save(update_fields=["status", "error", "duration_ms", "attempts", "last_attempt_at"])
    if ok:
        logger.info("Notification sent to %s: %s (%d ms)", delivery.channel, event, ms)
    else:
        retry = "will retry next run" if delivery.attempts < settings.NOTIFY_MAX_ATTEMPTS else "giving up"
        logger.error(
            "Notification to %s failed (attempt %d, %s): %s", delivery.channel, delivery.attempts, retry, error
        )
    return delivery


def deliver_pending(now: datetime | None = None) -> list[Delivery]:
    """Send every pending delivery and retry failed ones that have attempts left, oldest first."""
    now = now or timezone.now()
    by_id = {c.id: c for c in channels()}
    todo = (
        Delivery.objects.filter(status__in=[Delivery.PENDING, Delivery.FAILED])
        .filter(attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
        .select_related("event__alert__key")
        .order_by("created", "id")
    )
    return [attempt(delivery, by_id.get(delivery.channel_id), now) for delivery in todo]


def username(user) -> str:
    if hasattr(user, "get_username"):
        return user.get_username()
    return str(user or "")


def send_test(user, now: datetime | None = None) -> list[Delivery]:
    """A test notification to every configured channel, sent now; the deliveries say how each went."""
    now = now or timezone.now()
    targets = channels()
    if not targets:
        return []
    who = username(user)
    event = AlertEvent.objects.create(
        alert=None,
        created=now,
        kind=AlertEvent.TEST,
        level=Level.OK,
        message=f"Test notification sent by {who}",
        user=who,
    )
    logger.info("Test notification requested by %s for %d channels", who, len(targets))
    by_id = {c.id: c for c in targets}
    return [attempt(d, by_id[d.channel_id], now) for d in queue(event, only=targets)]
