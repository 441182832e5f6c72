"""Which factor of spend moved: spend = requests x tokens per request x price per token.

Pure maths over plain values (no Django), like forecast.py: a model's activity on its latest completed
day against its own baseline (the days before), and when a key's rise began from its readings today.
The three ratios multiply to the spend ratio, so each rise is told as the factors that made it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

FACTORS = ("requests", "tokens_per_request", "price_per_token")
FACTOR_WORDS = {"requests": "requests", "tokens_per_request": "tokens per request", "price_per_token": "price"}
MOVED = 1.5  # a factor that grew (or shrank) by half moved, if beyond its own noise too (NOISE_MARGIN)
NOISE_MARGIN = 1.25  # beyond the widest day-to-day swing of the baseline days, by a quarter


@dataclass(frozen=True)
class Usage:
    """Requests, tokens (prompt + completion + reasoning) and spend of one model over some days."""

    requests: float
    tokens: float
    spend: float
    days: int = 1

    @property
    def requests_per_day(self) -> float:
        return self.requests / self.days if self.days else 0.0

    @property
    def spend_per_day(self) -> float:
        return self.spend / self.days if self.days else 0.0

    @property
    def tokens_per_request(self) -> float | None:
        return self.tokens / self.requests if self.requests else None

    @property
    def price_per_million(self) -> float | None:
        """USD per million tokens."""
        return self.spend / self.tokens * 1e6 if self.tokens else None


def total(days: list[Usage], span: int) -> Usage:
    """The sum of some days' usage, averaged over `span` days (a day without use counts as zero)."""
    return Usage(
        requests=sum(d.requests for d in days),
        tokens=sum(d.tokens for d in days),
        spend=sum(d.spend for d in days),
        days=max(span, 1),
    )


def _ratio(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old <= 0:
        return None
    return new / old


def ratios(latest: Usage, baseline: Usage) -> dict[str, float | None]:
    """Each factor's ratio, latest over baseline (per day for requests and spend); None without a baseline."""
    return {
        "spend": _ratio(latest.spend_per_day, baseline.spend_per_day),
        "requests": _ratio(latest.requests_per_day, baseline.requests_per_day),
        "tokens_per_request": _ratio(latest.tokens_per_request, baseline.tokens_per_request),
        "price_per_token": _ratio(latest.price_per_million, baseline.price_per_million),
    }


def spread(days: list[Usage], baseline: Usage) -> dict[str, float]:
    """How far each factor wandered on the baseline's own days (the largest day-to-baseline ratio, either
    way): a move within a model's everyday noise is no move."""
    found = dict.fromkeys(FACTORS, 1.0)
    for day in days:
        for factor, ratio in ratios(day, baseline).items():
            if factor in found and ratio:
                found[factor] = max(found[factor], ratio, 1 / ratio)
    return found


def moved(found: dict[str, float | None], threshold: float = MOVED, noise: dict[str, float] | None = None) -> list[str]:
    """The factors that moved beyond the threshold and the baseline's own noise (either way), biggest first."""
    noise = noise or {}

    def bar(factor: str) -> float:
        return math.log(max(threshold, NOISE_MARGIN * noise.get(factor, 1.0)))

    changed = [f for f in FACTORS if found.get(f) is not None and abs(math.log(found[f])) > bar(f)]
    return sorted(changed, key=lambda f: abs(math.log(found[f])), reverse=True)


def times(ratio: float) -> str:
    """x4.1 for a rise, /2.0 for a fall."""
    return f"×{ratio:.1f}" if ratio >= 1 else f"÷{1 / ratio:.1f}"


def statement(model: str, found: dict[str, float | None], via: str, when: str, changed: list[str]) -> str:
    """'requests ×4.1 on anthropic/claude-sonnet-4 via key svc-b on 2026-12-03; tokens per request and price
    unchanged', from the ratios and the factors that moved."""
    if found.get("requests") is None:
        return f"{model} {via} {when}: new, no baseline to compare with"
    if not changed:
        return f"{model} {via} {when}: requests, tokens per request and price unchanged"
    head = ", ".join(f"{FACTOR_WORDS[f]} {times(found[f])}" for f in changed)
    steady = [FACTOR_WORDS[f] for f in FACTORS if f not in changed]
    tail = ""
    if steady:
        tail = "; " + (" and ".join(steady)) + " unchanged"
    return f"{head} on {model} {via} {when}{tail}"


def rise_start(samples: list[tuple[datetime, float]], baseline_per_day: float, factor: float) -> datetime | None:
    """When today's rise began: the end of the last stretch between readings spent at under `factor` times
    the baseline rate (the first reading when every stretch was fast). None with fewer than two readings."""
    if len(samples) < 2:
        return None
    start = samples[0][0]
    for (t0, u0), (t1, u1) in zip(samples, samples[1:], strict=False):
        days = (t1 - t0).total_seconds() / 86400
        if days <= 0:
            continue
        rate = max(u1 - u0, 0.0) / days
        if baseline_per_day > 0 and rate < factor * baseline_per_day:
            start = t1
    return start if start < samples[-1][0] else None
