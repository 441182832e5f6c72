"""`checkcredits --plugin`: the monitoring-plugin output (Nagios, Icinga, Zabbix, Checkmk and kin).

One status line, then ` | ` and performance data: 'label'=value[UOM];[warn];[crit];[min];[max], numbers in the C
locale, thresholds as ranges (`10:` alerts below 10). Every figure and level comes from `status`; a figure that is
not known is left out, never printed as 0. See https://www.monitoring-plugins.org/doc/guidelines.html#AEN201
"""

from __future__ import annotations

from .models import Level
from .status import KeyStatus, Status, balance_bounds, forecast_bounds, money

SERVICE = "CREDITS"


def number(value: float, digits: int) -> str:
    """A plain decimal in the C locale, trailing zeros dropped ("10", "45.23", "-1.5"): never "1e+06" or "1,000"."""
    text = f"{value:.{digits}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def label_text(text: str) -> str:
    """A label as the grammar allows it: quotes and equals signs delimit it and "|" starts performance data, so
    they become "_"; white space (new lines too) becomes one space."""
    return printable(text.replace("'", "_").replace("=", "_").replace("|", "_"))


def printable(text: str) -> str:
    """One line without control characters (a name from OpenRouter may carry NULs and terminal escapes)."""
    return "".join(ch for ch in " ".join(text.split()) if ch.isprintable())


def perf(label: str, value: float | None, digits: int, warn: str = "", crit: str = "", low=None, high=None) -> str:
    if value is None:
        return ""
    bounds = ["" if b is None else number(b, 2) for b in (low, high)]
    return f"'{label_text(label)}'={number(value, digits)};{warn};{crit};{bounds[0]};{bounds[1]}"


def at_least(bound: float) -> str:
    """The range that alerts below `bound` ("10:")."""
    return f"{number(bound, 2)}:"


def key_perfdata(key_status: KeyStatus, prefix: str) -> list[str]:
    warn, crit = balance_bounds(key_status.threshold)
    days_warn, days_crit = forecast_bounds()
    limit = key_status.success.credit_limit if key_status.success else None
    return [
        perf(f"{prefix}remaining", key_status.remaining, 2, at_least(warn), at_least(crit), 0, limit),
        perf(f"{prefix}days_left", key_status.days_left, 1, at_least(days_warn), at_least(days_crit), 0),
        perf(f"{prefix}burn_rate", key_status.burn.rate, 2, low=0),
    ]


def account_perfdata(found: Status, threshold: float | None) -> list[str]:
    account = found.account
    if not account.known:
        return []
    warn, crit = balance_bounds(threshold)
    days_warn, days_crit = forecast_bounds()
    return [
        perf("account_balance", account.balance, 2, at_least(warn), at_least(crit), 0, account.credits),
        perf("account_days_left", account.days_left, 1, at_least(days_warn), at_least(days_crit), 0),
        perf("account_burn_rate", account.burn.rate, 2, low=0),
    ]


def key_summary(key_status: KeyStatus) -> str:
    figures = []
    if key_status.remaining is not None:
        figures.append(f"{money(key_status.remaining)} left")
    if key_status.days_left is not None:
        figures.append(f"{key_status.days_left:.1f} days")
    return f"{key_status.name} {', '.join(figures)}" if figures else key_status.name


def status_line(found: Status) -> str:
    """`CREDITS WARNING - Production Key $45.23 left, 9.9 days`, and what makes it worse than OK."""
    main = found.primary
    parts = [key_summary(main)] if main is not None else []
    if found.level != Level.OK:
        worst = next((s for s in found.keys if s.level == found.level), None)
        if worst is not None:
            parts.append(worst.message if worst is main else f"{worst.name}: {worst.message}")
        elif found.account.known and found.account.level == found.level:
            parts.append(found.account.message)
        elif alert := next((a for a in found.unattached_alerts if a.level == found.level), None):
            parts.append(alert.message)
    text = "; ".join(parts) or "no key watched"
    # A "|" would start the performance data; a new line would end the status line.
    return f"{SERVICE} {found.level_name} - " + printable(text.replace("|", "/"))


def format_plugin(found: Status, threshold: float | None = None) -> str:
    """The status line and performance data for each key (the primary key's labels bare) and the account."""
    data: list[str] = []
    seen: set[str] = set()
    for key_status in found.keys:
        if key_status.key is None:
            continue  # a failure that belongs to no key has no figures
        prefix = "" if key_status is found.primary else f"{key_status.name} "
        if prefix and prefix in seen:  # two keys of one name: the hash tells them apart
            prefix = f"{key_status.name} {key_status.hash_prefix} "
        seen.add(prefix)
        data += key_perfdata(key_status, prefix)
    data += account_perfdata(found, threshold)
    data = [d for d in data if d]
    return status_line(found) + (" | " + " ".join(data) if data else "") + "\n"
