"""The model advisor: what each used model cost, what the same tokens would cost on like-for-like models,
which models are going away, and what a swap does to the forecast.

A thin layer of database reads around `modelcosts` (the maths). `advice()` is the one answer every
surface shows: `advisemodels --json`, `/api/models/advice`, the Financial page and the MCP tool.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Max, Sum

from . import catalogue, forecast, memo, status
from .modelcosts import Offer, Usage, cents, compare, effective_prices, swapped_rate
from .models import Activity, CatalogueFetch, CatalogueModel, CreditLog

WINDOWS = (7, 30, 90)  # as on Financial
MAX_REFUSED = 20  # the cheapest models that are not like-for-like, listed with the reason
DAYS_PER_MONTH = 30


def window_dates(now: datetime, days: int) -> tuple[date, date]:
    """The last `days` completed UTC days (OpenRouter's activity has no partial day)."""
    last = now.astimezone(UTC).date() - timedelta(days=1)
    return last - timedelta(days=days - 1), last


def _decimal(value: float | None) -> Decimal:
    return Decimal(str(round(value or 0.0, 10)))


def usage_in_window(now: datetime, days: int, model: str | None = None) -> list[Usage]:
    """Each model's account-wide work in the window, biggest spend first (kept per activity sync: it reads
    only the stored activity, whose version changes with every sync)."""
    first, last = window_dates(now, days)
    version = memo.activity_version()
    return memo.remember("usage-in-window", (first, last, model), version, lambda: _usage(first, last, model))


def _usage(first: date, last: date, model: str | None) -> list[Usage]:
    rows = Activity.objects.account_wide().between(first, last)
    if model:
        rows = rows.filter(model=model)
    totals = (
        rows.order_by()
        .values("model")
        .annotate(
            spend=Sum("usage"),
            byok=Sum("byok_usage_inference"),
            requests=Sum("requests"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            reasoning=Sum("reasoning_tokens"),
            cached=Sum("cached_tokens"),
        )
    )
    peaks: dict[str, int] = {}
    for row in rows.order_by().values("model", "date").annotate(calls=Sum("requests")):
        peaks[row["model"]] = max(peaks.get(row["model"], 0), row["calls"] or 0)
    providers: dict[str, list[str]] = {}
    for name, provider in rows.order_by().values_list("model", "provider_name").distinct():
        if provider:
            providers.setdefault(name, []).append(provider)
    found = [
        Usage(
            model=row["model"],
            spend=_decimal(row["spend"]),
            requests=row["requests"] or 0,
            prompt_tokens=row["prompt"] or 0,
            completion_tokens=row["completion"] or 0,
            reasoning_tokens=row["reasoning"] or 0,
            cached_tokens=row["cached"] or 0,
            byok_spend=_decimal(row["byok"]),
            peak_daily_requests=peaks.get(row["model"], 0),
            providers=sorted(providers.get(row["model"], [])),
        )
        for row in totals
    ]
    return sorted(found, key=lambda u: (-u.spend, u.model))


def offer_of(row: CatalogueModel) -> Offer:
    return Offer(
        id=row.model_id,
        name=row.name,
        context_length=row.context_length,
        input_modalities=list(row.input_modalities or []),
        output_modalities=list(row.output_modalities or []),
        supported_parameters=list(row.supported_parameters or []),
        expiration_date=row.expiration_date,
        prices=row.prices(),
    )


def offers() -> dict[str, tuple[Offer, bool]]:
    """Every stored catalogue model by id, with whether the latest fetch still listed it."""
    return {row.model_id: (offer_of(row), row.listed) for row in CatalogueModel.objects.all()}


def free_quota() -> int | None:
    """The account's daily `:free` request quota from the newest check that reported it (GET /key's
    `free_model_daily_requests.limit`, stored as `free_limit`), or None when no check says. One look-up in
    a partial index, however long the history (a scan of every row when no check ever reported it)."""
    return (
        CreditLog.objects.filter(free_limit__isnull=False)
        .order_by("-timestamp")
        .values_list("free_limit", flat=True)
        .first()
    )


def catalogue_figures(now: datetime) -> dict:
    """How old the prices are, and whether the last attempt to refresh them failed."""
    good = catalogue.last_success()
    latest = CatalogueFetch.objects.first()
    note = ""
    if good is None:
        note = "the model catalogue was never fetched: no list prices, no candidates"
    if latest is not None and not latest.ok:
        note = f"the last catalogue fetch failed ({latest.error}); {note or 'prices are from an older copy'}"
    age = None if good is None else (now - good.started_at).total_seconds() / 3600
    return {
        "catalogue_fetched_at": good.started_at.isoformat() if good else None,
        "catalogue_age_hours": round(age, 1) if age is not None else None,
        "catalogue_note": note or None,
    }


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(cents(value))


def _price(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def model_advice(usage: Usage, known: dict, quota: int | None, now: datetime) -> dict:
    entry = known.get(usage.model)
    result = {
        "model": usage.model,
        "spend": _money(usage.spend),
        "requests": usage.requests,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_tokens,
        "byok_spend": _money(usage.byok_spend),
        "providers": usage.providers,
        "expiration_date": None,
        "expires_in_days": None,
        "in_catalogue": entry is not None,
        "listed": bool(entry and entry[1]),
        "url": None,
        "candidates": [],
        "not_like_for_like": [],
    }
    if entry is None:
        result["note"] = "not in the model catalogue: no list price, no candidates"
        return result
    current, listed = entry
    result["url"] = current.url
    if current.expiration_date is not None:
        result["expiration_date"] = current.expiration_date.isoformat()
        result["expires_in_days"] = (current.expiration_date - now.astimezone(UTC).date()).days
    prices = effective_prices(usage, current)
    result.update(
        {
            "list_cost": _money(prices["list_cost"]),
            "list_prompt_price": _price(prices["list_prompt_price"]),
            "list_completion_price": _price(prices["list_completion_price"]),
            "effective_prompt_price": _price(prices["effective_prompt_price"]),
            "effective_completion_price": _price(prices["effective_completion_price"]),
            "price_notes": prices["price_notes"],
        }
    )
    if not listed:
        result["note"] = "no longer in OpenRouter's catalogue"
    others = [offer for offer, still in known.values() if still]
    candidates, refused = compare(usage, current, others, quota)
    result["candidates"] = [
        {
            "model": c["model"],
            "name": c["name"],
            "url": c["url"],
            "cost": _money(c["cost"]),
            "saving": _money(c["saving"]),
            "saving_percent": float(c["saving_percent"]) if c["saving_percent"] is not None else None,
            "matched": c["matched"],
        }
        for c in candidates[: settings.ADVISOR_MAX_CANDIDATES]
    ]
    result["not_like_for_like"] = [
        {"model": r["model"], "url": r["url"], "cost": _money(r["cost"]), "reason": r["reason"]}
        for r in refused[:MAX_REFUSED]
    ]
    return result


def advice(now: datetime, days: int = 30, model: str | None = None) -> dict:
    """The advisor's answer: the shape of `advisemodels --json` and `/api/models/advice`."""
    first, last = window_dates(now, days)
    known = offers()
    quota = free_quota()
    models = [model_advice(u, known, quota, now) for u in usage_in_window(now, days, model)]
    return {
        "window_days": days,
        "window_start": first.isoformat(),
        "window_end": last.isoformat(),
        "generated_at": now.isoformat(),
        **catalogue_figures(now),
        "free_model_daily_requests": quota,
        "activity_synced_at": _iso(Activity.objects.account_wide().aggregate(last=Max("fetched_at"))["last"]),
        "models": models,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def what_if(now: datetime, days: int, model: str, replacement: str, found: status.Status | None = None) -> dict:
    """The account's burn rate, days left and monthly spend with `model`'s work moved to `replacement`,
    from the same costs `advice` shows and the same forecast the status uses."""
    answer = advice(now, days, model)
    entry = next((m for m in answer["models"] if m["model"] == model), None)
    if entry is None:
        raise ValueError(f"{model} has no spend in the last {days} days")
    option = next((c for c in entry["candidates"] if c["model"] == replacement), None)
    if option is None:
        raise ValueError(f"{replacement} is not a like-for-like candidate for {model}")
    account = (found or status.build(now, pages=True)).account
    rate = account.burn.rate
    new_rate = swapped_rate(rate, entry["spend"], option["cost"], days)
    return {
        "model": model,
        "replacement": replacement,
        "window_days": days,
        "spend": entry["spend"],
        "cost": option["cost"],
        "saving": option["saving"],
        "balance": account.balance,
        "burn_rate_per_day": rate,
        "swapped_burn_rate_per_day": new_rate,
        "days_left": forecast.days_until_exhaustion(account.balance, rate),
        "swapped_days_left": forecast.days_until_exhaustion(account.balance, new_rate),
        "monthly_spend": rate * DAYS_PER_MONTH if rate is not None else None,
        "swapped_monthly_spend": new_rate * DAYS_PER_MONTH if new_rate is not None else None,
        "note": None if rate is not None else account.burn.unknown_text or "the account's burn rate is unknown",
    }


def expiring(now: datetime, days: int | None = None) -> list[dict]:
    """Used models (spend in the window) whose expiration date falls within ADVISOR_EXPIRY_DAYS."""
    horizon = settings.ADVISOR_EXPIRY_DAYS
    answer = advice(now, days or settings.ADVISOR_WINDOW_DAYS)
    return [
        m
        for m in answer["models"]
        if m["expires_in_days"] is not None and m["expires_in_days"] <= horizon and (m["spend"] or 0) > 0
    ]


def optimization_opportunity(now: datetime) -> dict | None:
    """The evidence for an `optimize_models` task: the one candidate that saves the largest share of the
    account's spend in the window, when that share is above ADVISOR_SAVING_PERCENT; else None."""
    answer = advice(now, settings.ADVISOR_WINDOW_DAYS)
    total = sum(m["spend"] or 0 for m in answer["models"])
    if total <= 0:
        return None
    best = None
    for entry in answer["models"]:
        for option in entry["candidates"]:
            share = (option["saving"] or 0) / total * 100
            if best is None or share > best["saving_percent_of_account"]:
                best = {
                    "model": entry["model"],
                    "candidate": option["model"],
                    "url": option["url"],
                    "spend": entry["spend"],
                    "cost": option["cost"],
                    "saving": option["saving"],
                    "saving_percent_of_account": round(share, 1),
                    "matched": option["matched"],
                    "account_spend": round(total, 2),
                    "window_days": answer["window_days"],
                    "catalogue_age_hours": answer["catalogue_age_hours"],
                }
    if best is None or best["saving_percent_of_account"] <= settings.ADVISOR_SAVING_PERCENT:
        return None
    return best
