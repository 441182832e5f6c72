"""Money, days and levels as people read them (USD throughout)."""

from django import template

from ..dashboard import LEVEL_CSS
from ..models import Level

register = template.Library()


@register.filter
def usd(value, digits: int = 2) -> str:
    """$1,234.56, a minus sign before the dollar, or "unknown"."""
    if value is None:
        return "unknown"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{int(digits)}f}"


@register.filter
def days(value) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.1f} day" + ("" if round(value, 1) == 1 else "s")


@register.filter
def percent(value) -> str:
    return "unknown" if value is None else f"{value:.0f}%"


@register.filter
def level_css(level) -> str:
    """The CSS modifier for a level: ok, warning, critical, unknown."""
    return LEVEL_CSS.get(Level(level), "unknown") if level is not None else "unknown"


@register.filter
def level_name(level) -> str:
    return Level(level).label if level is not None else "UNKNOWN"


@register.filter
def get_item(mapping, name):
    return (mapping or {}).get(name)


@register.filter
def per_million(price) -> str:
    """A per-token list price as dollars per million tokens: $2.00, or "none"."""
    return "none" if price is None else f"${float(price) * 1_000_000:,.4g}"


@register.filter
def count(value) -> str:
    """12,345: a whole number with thousands separators."""
    return "unknown" if value is None else f"{int(value):,}"
