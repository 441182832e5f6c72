"""What a model's work cost, and what the same tokens would cost on another model: pure maths, no Django.

Prices are OpenRouter's list prices in USD per token (Decimal, as the catalogue writes them); token
counts are whole numbers, so a cost is exact until it is rounded to the cent at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
MILLION = Decimal(1_000_000)
# The capabilities a replacement must keep when the current model offers them.
CAPABILITIES = ("tools", "tool_choice", "response_format", "structured_outputs", "reasoning")
FREE_SUFFIX = ":free"
PRICE_GAP = Decimal("0.02")  # paid within 2 % of the list price: nothing to explain
MODEL_PAGE = "https://openrouter.ai/{id}"


@dataclass
class Usage:
    """One model's work in a window, summed from the stored activity."""

    model: str
    spend: Decimal
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    byok_spend: Decimal = Decimal(0)
    peak_daily_requests: int = 0
    providers: list[str] = field(default_factory=list)


@dataclass
class Offer:
    """One model of the catalogue: what it accepts and what it charges."""

    id: str
    name: str = ""
    context_length: int | None = None
    input_modalities: list[str] = field(default_factory=list)
    output_modalities: list[str] = field(default_factory=list)
    supported_parameters: list[str] = field(default_factory=list)
    expiration_date: date | None = None
    prices: dict[str, Decimal | None] = field(default_factory=dict)

    def price(self, name: str) -> Decimal | None:
        return self.prices.get(name)

    @property
    def is_free(self) -> bool:
        return self.id.endswith(FREE_SUFFIX)

    @property
    def url(self) -> str:
        return MODEL_PAGE.format(id=self.id.removesuffix(FREE_SUFFIX))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def token_cost(usage: Usage, offer: Offer, cache: bool) -> Decimal:
    """prompt x prompt + completion x completion + reasoning x internal_reasoning (where given) +
    requests x request (where given); with `cache`, the cached prompt tokens at the cache-read price."""
    prompt_price = offer.price("prompt") or Decimal(0)
    cache_price = offer.price("input_cache_read")
    cached = min(usage.cached_tokens, usage.prompt_tokens) if cache and cache_price is not None else 0
    cost = (usage.prompt_tokens - cached) * prompt_price + usage.completion_tokens * (
        offer.price("completion") or Decimal(0)
    )
    if cached:
        cost += cached * cache_price
    if (reasoning := offer.price("internal_reasoning")) is not None:
        cost += usage.reasoning_tokens * reasoning
    if (request := offer.price("request")) is not None:
        cost += usage.requests * request
    return cost


def caches_both(current: Offer, candidate: Offer) -> bool:
    return current.price("input_cache_read") is not None and candidate.price("input_cache_read") is not None


def mismatch(current: Offer, candidate: Offer) -> tuple[list[str], str]:
    """The criteria the candidate matched, and the first it failed ("" when it is like-for-like)."""
    matched = []
    if current.context_length is not None:
        if candidate.context_length is None or candidate.context_length < current.context_length:
            have = f"{candidate.context_length:,}" if candidate.context_length is not None else "unknown"
            return matched, f"context {have} tokens < {current.context_length:,}"
        matched.append(f"context >= {current.context_length:,}")
    for kind, wanted, offered in (
        ("input", current.input_modalities, candidate.input_modalities),
        ("output", current.output_modalities, candidate.output_modalities),
    ):
        missing = [m for m in wanted if m not in offered]
        if missing:
            return matched, f"no {kind} {', '.join(missing)}"
        if wanted:
            matched.append(f"{kind} {'+'.join(wanted)}")
    for capability in CAPABILITIES:
        if capability in current.supported_parameters:
            if capability not in candidate.supported_parameters:
                return matched, f"no {capability}"
            matched.append(capability)
    return matched, ""


def free_quota_reason(usage: Usage, quota: int | None) -> str:
    """Why a `:free` variant cannot carry the work ("" when it can): its daily request quota."""
    if quota is None:
        return "free-model daily quota unknown (not in the latest check)"
    if usage.peak_daily_requests > quota:
        return f"{usage.peak_daily_requests:,} requests on the busiest day > the free quota of {quota:,} a day"
    return ""


def compare(usage: Usage, current: Offer, others: list[Offer], free_quota: int | None) -> tuple[list, list]:
    """Like-for-like candidates ranked by saving, and the models that are not like-for-like with why.

    A candidate's saving is against what was spent; only models that would have cost less are listed as
    "not like-for-like", the dearer ones would not have been chosen anyway.
    """
    spend = usage.spend
    candidates, refused = [], []
    for other in others:
        if other.id == current.id:
            continue
        cost = token_cost(usage, other, caches_both(current, other))
        matched, reason = mismatch(current, other)
        if not reason and other.is_free:
            reason = free_quota_reason(usage, free_quota)
            if not reason:
                matched.append("free quota carries the busiest day")
        if reason:
            if cost < spend:
                refused.append({"model": other.id, "url": other.url, "cost": cents(cost), "reason": reason})
            continue
        saving = spend - cost
        percent = (saving / spend * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) if spend > 0 else None
        candidates.append(
            {
                "model": other.id,
                "name": other.name,
                "url": other.url,
                "cost": cents(cost),
                "saving": cents(saving),
                "saving_percent": percent,
                "matched": matched,
                "exact_cost": cost,
            }
        )
    candidates.sort(key=lambda c: (c["exact_cost"], c["model"]))
    refused.sort(key=lambda r: (r["cost"], r["model"]))
    return candidates, refused


def effective_prices(usage: Usage, offer: Offer) -> dict:
    """The price paid per million prompt and completion tokens beside the list price, and why they differ.

    The spend is shared between prompt and completion in the proportion their list costs have (OpenRouter
    reports one sum per day): paid = list x spend / list cost of the same tokens.
    """
    list_cost = token_cost(usage, offer, cache=True)
    ratio = usage.spend / list_cost if list_cost > 0 else None
    prompt, completion = offer.price("prompt"), offer.price("completion")

    def per_million(price: Decimal | None) -> Decimal | None:
        return None if price is None else (price * MILLION).quantize(Decimal("0.0001"))

    paid_prompt = per_million(prompt * ratio) if prompt is not None and ratio is not None else None
    paid_completion = per_million(completion * ratio) if completion is not None and ratio is not None else None
    notes = []
    if ratio is not None and abs(ratio - 1) > PRICE_GAP:
        if usage.byok_spend > 0:
            notes.append(f"BYOK: ${cents(usage.byok_spend)} was billed to your own provider key, not in credits")
        if usage.cached_tokens and offer.price("input_cache_read") is not None:
            notes.append(f"cached tokens: {usage.cached_tokens:,} prompt tokens read from cache at the cache price")
        elif usage.cached_tokens:
            notes.append(f"cached tokens: {usage.cached_tokens:,}, but the catalogue lists no cache-read price")
        if usage.providers:
            notes.append(f"provider price: served by {', '.join(usage.providers)}, whose prices may differ from list")
        if not notes:
            notes.append("unknown: the spend is not what the list price gives for these tokens")
    return {
        "list_cost": cents(list_cost),
        "list_prompt_price": per_million(prompt),
        "list_completion_price": per_million(completion),
        "effective_prompt_price": paid_prompt,
        "effective_completion_price": paid_completion,
        "price_notes": notes,
    }


def swapped_rate(rate: float | None, model_spend: float, replacement_cost: float, days: float) -> float | None:
    """The daily burn rate with a model's work moved to a replacement: its spend per day out, the
    replacement's cost of the same tokens per day in."""
    if rate is None or days <= 0:
        return None
    return max(0.0, rate - model_spend / days + replacement_cost / days)
