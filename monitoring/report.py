"""The seed's text report, one block per key; the words and number formats scripts rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from .models import Level

SYMBOLS = {Level.OK: "✓", Level.WARNING: "⚠", Level.CRITICAL: "✗", Level.UNKNOWN: "?"}
PERIODS = {"daily": "today", "weekly": "this week", "monthly": "this month"}


def next_reset(window: str, when: datetime) -> datetime | None:
    """When a key's cap next resets: OpenRouter resets at midnight UTC, weeks on Monday."""
    midnight = when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "daily":
        return midnight + timedelta(days=1)
    if window == "weekly":
        return midnight + timedelta(days=7 - midnight.weekday())
    if window == "monthly":
        return (midnight.replace(day=1) + timedelta(days=32)).replace(day=1)
    return None


def money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def burn_rate_line(status, next_check=None) -> str:
    window = settings.BURN_RATE_WINDOW_DAYS
    if status.burn_rate is None:
        when = f"; next check {next_check:%Y-%m-%d %H:%M} UTC" if next_check else ""
        return f"Burn Rate: unknown (need 2+ entries{when})"
    return f"Burn Rate: {money(status.burn_rate)}/day ({window}-day average)"


def days_left_line(status) -> str:
    if status.days_left is not None:
        return f"Days Left: {status.days_left:.1f} days at current rate"
    if status.remaining is None:
        return "Days Left: unknown (balance unknown)"
    if status.burn_rate is None:
        return "Days Left: unknown (burn rate unknown)"
    return "Days Left: not running out (no spend in the window)"


def key_block(status, verbose: bool = False, next_check=None) -> list[str]:
    log = status.log
    lines = [f"API Key: {status.name}"]
    if not log.ok:
        lines.append(f"{SYMBOLS[Level.UNKNOWN]} UNKNOWN: {log.error}")
        return lines
    if status.remaining is not None:
        lines.append(f"Balance: {money(status.remaining)} remaining")
    else:
        lines.append(f"Balance: unknown ({log.account_note or 'no limit and no account balance'})")
    if log.credit_limit is not None and log.limit_reset and log.limit_remaining is not None:
        # A cap that resets is measured in its window: this period's spend, not the all-time usage.
        used = max(log.credit_limit - log.limit_remaining, 0.0)
        lines.append(f"Usage: {money(used)} / {money(log.credit_limit)} {PERIODS.get(log.limit_reset, 'this period')}")
    elif log.credit_limit is not None:
        lines.append(f"Usage: {money(log.usage)} / {money(log.credit_limit)}")
    else:
        lines.append(f"Usage: {money(log.usage)} (no limit)")
    if log.account_balance is not None:
        lines.append(
            f"Account: {money(log.account_balance)} remaining "
            f"({money(log.account_credits)} credits, {money(log.account_usage)} used)"
        )
    if verbose:
        if log.limit_remaining is not None:
            window = log.limit_reset or "never resets"
            lines.append(f"Key Limit Left: {money(log.limit_remaining)} (window: {window})")
        if log.credit_limit is not None:
            reset = next_reset(log.limit_reset, log.timestamp)
            lines.append(
                f"Limit Resets: {log.limit_reset}, next {reset:%Y-%m-%d %H:%M} UTC"
                if reset
                else "Limit Resets: never (the cap is for the key's lifetime)"
            )
        for label, value in (
            ("Today", log.usage_daily),
            ("This Week", log.usage_weekly),
            ("This Month", log.usage_monthly),
        ):
            if value is not None:
                lines.append(f"Usage {label}: {money(value)}")
        if log.byok_usage is not None:
            lines.append(f"BYOK Usage: {money(log.byok_usage)} (your own provider keys, all time)")
        if log.is_free_tier is not None:
            lines.append(f"Free Tier: {'yes (never bought credits)' if log.is_free_tier else 'no'}")
        if status.key is not None and status.key.expires_at:
            lines.append(f"Expires: {status.key.expires_at:%Y-%m-%d %H:%M} UTC")
    lines.append("")
    lines.append(burn_rate_line(status, next_check))
    lines.append(days_left_line(status))
    if verbose and status.exhaustion_date:
        lines.append(f"Runs Out: {status.exhaustion_date:%Y-%m-%d} (projected)")
    lines.append("")
    symbol = SYMBOLS[Level(status.level)]
    if status.level == Level.OK:
        lines.append(f"{symbol} Credits OK")
    else:
        lines.append(f"{symbol} {Level(status.level).label}: {status.message}")
    return lines


def format_report(statuses, verbose: bool = False, next_check=None) -> str:
    lines = ["Checking OpenRouter credits..."]
    for status in statuses:
        lines.append("")
        lines += key_block(status, verbose, next_check)
    return "\n".join(lines) + "\n"
