"""The seed's text report: one block per directly watched key, then the account and one line per listed
key, worst first. The words and number formats scripts rely on; every figure comes from `status`."""

from __future__ import annotations

from .models import Level
from .status import KeyStatus, Status, money

SYMBOLS = {Level.OK: "✓", Level.WARNING: "⚠", Level.CRITICAL: "✗", Level.UNKNOWN: "?"}
PERIOD_WORDS = {"day": "today", "week": "this week", "month": "this month"}


def burn_rate_line(key_status: KeyStatus, next_check=None) -> str:
    burn = key_status.burn
    if not burn.known:
        when = f"; next check {next_check:%Y-%m-%d %H:%M} UTC" if next_check else ""
        return f"Burn Rate: {burn.unknown_text[:-1]}{when})"
    return f"Burn Rate: {money(burn.rate)}/day ({burn.window_text})"


def days_left_line(key_status: KeyStatus) -> str:
    if key_status.days_left is not None:
        line = f"Days Left: {key_status.days_left:.1f} days at current rate"
        if key_status.binding not in ("key", "account"):  # a budget layer refuses the key first: name it
            return f"{line} ({key_status.binding_text})"
        # Name what runs out whenever there are two candidates: the key's cap and the shared account.
        return f"{line} ({key_status.binding_text})" if key_status.shares_account else line
    if key_status.remaining is None:
        return "Days Left: unknown (balance unknown)"
    if key_status.forecast_unknown:
        return f"Days Left: unknown ({key_status.binding_text})"
    if key_status.binding_text:
        return f"Days Left: not running out ({key_status.binding_text})"
    if not key_status.burn.known:
        return "Days Left: unknown (burn rate unknown)"
    return "Days Left: not running out (no spend in the window)"


def usage_line(key_status: KeyStatus) -> str:
    log = key_status.success
    period = key_status.reset_period
    if log.credit_limit is None:
        return f"Usage: {money(log.usage)} (no limit)"
    if period and key_status.used_in_limit is not None:
        # A cap that resets is measured against its window, not the all-time usage.
        return f"Usage: {money(key_status.used_in_limit)} / {money(log.credit_limit)} {PERIOD_WORDS[period]}"
    return f"Usage: {money(log.usage)} / {money(log.credit_limit)}"


def verdict_line(key_status: KeyStatus) -> str:
    symbol = SYMBOLS[Level(key_status.level)]
    if key_status.level == Level.OK:
        return f"{symbol} Credits OK"
    return f"{symbol} {Level(key_status.level).label}: {key_status.message}"


def key_block(key_status: KeyStatus, verbose: bool = False, next_check=None) -> list[str]:
    lines = [f"API Key: {key_status.name}"]
    log = key_status.success
    if log is None:
        lines += ["", verdict_line(key_status)]
        return lines
    if key_status.remaining is not None:
        lines.append(f"Balance: {money(key_status.remaining)} remaining")
    else:
        lines.append(f"Balance: unknown ({log.account_note or 'no limit and no account balance'})")
    lines.append(usage_line(key_status))
    if verbose:
        lines += verbose_lines(key_status)
    lines.append("")
    lines.append(burn_rate_line(key_status, next_check))
    lines.append(days_left_line(key_status))
    if verbose and key_status.exhaustion_date:
        lines.append(f"Runs Out: {key_status.exhaustion_date:%Y-%m-%d %H:%M} UTC (projected)")
        earliest, latest = key_status.exhaustion_range
        if earliest is not None:
            late = f"{latest:%Y-%m-%d}" if latest else "beyond a year"
            lines.append(f"Runs Out Range: {earliest:%Y-%m-%d} to {late} (10th-90th percentile of daily spend)")
    if key_status.log is not None and key_status.log is not log:
        lines.append(f"Last Success: {log.timestamp:%Y-%m-%d %H:%M} UTC (the newest check failed)")
    lines.append("")
    lines.append(verdict_line(key_status))
    return lines


def verbose_lines(key_status: KeyStatus) -> list[str]:
    """The useful /key fields: the cap's window, per-window usage, BYOK, expiry."""
    log = key_status.success
    lines = []
    if log.limit_remaining is not None:
        window = log.limit_reset or "never resets"
        lines.append(f"Key Limit Left: {money(log.limit_remaining)} (window: {window})")
        if key_status.resets_at:
            lines.append(f"Key Limit Resets: {key_status.resets_at:%Y-%m-%d %H:%M} UTC")
    for label, value in (
        ("Today", log.usage_daily),
        ("This Week", log.usage_weekly),
        ("This Month", log.usage_monthly),
    ):
        if value is not None:
            lines.append(f"Usage {label}: {money(value)}")
    if log.byok_usage:
        lines.append(f"BYOK Usage: {money(log.byok_usage)} (your own provider keys, not OpenRouter credits)")
    if log.is_free_tier is not None:
        lines.append(f"Free Tier: {'yes (never bought credits)' if log.is_free_tier else 'no'}")
    if key_status.key is not None and key_status.key.expires_at:
        lines.append(f"Expires: {key_status.key.expires_at:%Y-%m-%d %H:%M} UTC")
    for name, rate in key_status.rates.items():
        text = f"{money(rate.rate)}/day ({rate.window_text})" if rate.known else rate.unknown_text
        lines.append(f"Burn Rate {name}: {text}")
    return lines + limit_lines(key_status)


def limit_lines(key_status: KeyStatus) -> list[str]:
    """Every budget layer, in OpenRouter's enforcement order, with its forecast and level."""
    if key_status.limits_note:
        return [f"Budget Layers: unknown ({key_status.limits_note})"]
    lines = []
    for layer in key_status.limits:
        mark = " [binds first]" if layer.binding else ""
        lines.append(f"Limit: {layer.name}: {layer.forecast_text}; {layer.level_name}{mark}")
    log = key_status.success
    if log.free_limit is not None:
        lines.append(f"Free Model Requests: {log.free_remaining} of {log.free_limit} left today (resets 00:00 UTC)")
    return lines


def account_block(found: Status) -> list[str]:
    account = found.account
    if not account.known:
        stale = f"; {account.as_of_text}" if account.stale else ""
        return [f"Account: unknown ({account.note}){stale}"]
    detail = f" ({money(account.credits)} credits, {money(account.usage)} used)" if account.usage is not None else ""
    lines = [f"Account: {money(account.balance)} remaining{detail}"]
    burn = account.burn
    if burn.known:
        lines.append(f"Account Burn Rate: {money(burn.rate)}/day ({burn.window_text})")
    else:
        lines.append(f"Account Burn Rate: {burn.unknown_text}")
    if account.days_left is not None:
        lines.append(f"Account Days Left: {account.days_left:.1f} days at current rate")
    elif burn.known:
        lines.append("Account Days Left: not running out (no spend in the window)")
    return lines


def listed_line(key_status: KeyStatus, verbose: bool = False) -> str:
    figures = []
    if key_status.remaining is not None:
        figures.append(f"{money(key_status.remaining)} left")
    if key_status.burn.known:
        window = f" ({key_status.burn.window_text})" if verbose else ""
        figures.append(f"{money(key_status.burn.rate)}/day{window}")
    if key_status.days_left is not None:
        figures.append(f"{key_status.days_left:.1f} days")
    detail = f" ({', '.join(figures)})" if figures else ""
    verdict = "OK" if key_status.level == Level.OK else key_status.message
    return f"{SYMBOLS[Level(key_status.level)]} {Level(key_status.level).label:<8} {key_status.name}{detail}: {verdict}"


def format_report(found: Status, verbose: bool = False, show_all: bool = False) -> str:
    lines = ["Checking OpenRouter credits..."]
    direct = [s for s in found.keys if s.key is None or s.key.source != "listed"]
    listed = [s for s in found.keys if s.key is not None and s.key.source == "listed"]
    for key_status in direct:
        lines.append("")
        lines += key_block(key_status, verbose, found.next_check)
    if found.account.known or found.account.stale or listed:
        lines.append("")
        lines += account_block(found)
    if listed:
        shown = listed if show_all else [s for s in listed if s.level != Level.OK]
        hidden = len(listed) - len(shown)
        lines.append("")
        lines.append(f"Keys listed by the management key: {len(listed)}, worst first")
        lines += [listed_line(s, verbose) for s in shown]
        if hidden:
            lines.append(f"{hidden} more OK (--all lists every key)")
    if len(found.keys) > 1 or found.account.known:
        lines.append("")
        lines.append(f"Overall: {found.level_name}")
    return "\n".join(lines) + "\n"
