"""OpenRouter's public model catalogue, kept in the database: fetched at most daily, a row per price change.

Fetches through the one client (`openrouter.Client.list_models`, no key sent); a failed fetch is a
`CatalogueFetch` row with its reason and never breaks the scheduled check that asked for it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db import transaction

from .models import CATALOGUE_PRICES, CatalogueFetch, CatalogueModel, CataloguePrice
from .openrouter import Client, ListedModel, OpenRouterError

logger = logging.getLogger("monitoring")

MAX_AGE = timedelta(days=1)  # the catalogue is refreshed when its last good copy is older than this
RETRY_AFTER = timedelta(hours=1)  # after a failed fetch, the next run waits this long before asking again


def last_success() -> CatalogueFetch | None:
    return CatalogueFetch.objects.filter(ok=True).first()


def age_seconds(now: datetime) -> float | None:
    """Seconds since the last good fetch; None when the catalogue was never fetched."""
    fetched = last_success()
    return None if fetched is None else max(0.0, (now - fetched.started_at).total_seconds())


def is_stale(now: datetime) -> bool:
    fetched = last_success()
    return fetched is None or now - fetched.started_at >= MAX_AGE


def refresh_if_stale(now: datetime) -> CatalogueFetch | None:
    """Fetch the catalogue when the stored copy is older than a day (and no attempt failed within the hour)."""
    if not is_stale(now):
        return None
    latest = CatalogueFetch.objects.first()
    if latest is not None and not latest.ok and timedelta(0) <= now - latest.started_at < RETRY_AFTER:
        return None
    return refresh(now)


def refresh(now: datetime, client: Client | None = None) -> CatalogueFetch:
    """Fetch every page now and store it; the row says how it went (never raises for OpenRouter's answers)."""
    started = time.monotonic()
    try:
        catalogue = (client or Client.from_settings(public=True)).list_models()
    except OpenRouterError as exc:
        ms = int((time.monotonic() - started) * 1000)
        logger.error("Model catalogue fetch failed: %s", exc.message)
        return CatalogueFetch.objects.create(started_at=now, ok=False, error=exc.message, duration_ms=ms)
    ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        changes = store(catalogue.models, now)
        fetch = CatalogueFetch.objects.create(
            started_at=now,
            ok=True,
            models_count=len(catalogue.models),
            skipped="\n".join(catalogue.skipped)[:10_000],
            price_changes=changes,
            duration_ms=ms,
        )
    if catalogue.skipped:
        logger.warning("Model catalogue: %d models left out, first %s", len(catalogue.skipped), catalogue.skipped[0])
    return fetch


def _fields(item: ListedModel, now: datetime) -> dict:
    fields = {
        "name": item.name,
        "context_length": item.context_length,
        "input_modalities": item.input_modalities,
        "output_modalities": item.output_modalities,
        "supported_parameters": item.supported_parameters,
        "expiration_date": item.expiration_date,
        "fetched_at": now,
        "listed": True,
    }
    fields.update({f"{name}_price": item.prices.get(name) for name in CATALOGUE_PRICES})
    return fields


def store(items: list[ListedModel], now: datetime) -> int:
    """Upsert every model; a price history row for a new model and for each change. Returns the changes."""
    known = {m.model_id: m for m in CatalogueModel.objects.all()}
    changes = 0
    history = []
    for item in items:
        fields = _fields(item, now)
        row = known.get(item.id)
        if row is None:
            row = CatalogueModel.objects.create(model_id=item.id, **fields)
            history.append(CataloguePrice(model=row, changed_at=now, first=True, **_prices(row)))
            continue
        before = row.prices()
        for name, value in fields.items():
            setattr(row, name, value)
        row.save()
        if row.prices() != before:
            changes += 1
            history.append(CataloguePrice(model=row, changed_at=now, **_prices(row)))
    CataloguePrice.objects.bulk_create(history)
    seen = {item.id for item in items}
    CatalogueModel.objects.listed().exclude(model_id__in=seen).update(listed=False)
    return changes


def _prices(row: CatalogueModel) -> dict:
    return {f"{name}_price": value for name, value in row.prices().items()}


def price_changes(model_ids: list[str], since: datetime) -> list[dict]:
    """Changes (not first sightings) of the list prices of these models since a time, newest first,
    each with the prices before and after: the Financial page's events."""
    rows = (
        CataloguePrice.objects.filter(model__model_id__in=model_ids, changed_at__gte=since, first=False)
        .select_related("model")
        .order_by("-changed_at")
    )
    found = []
    for row in rows:
        before = (
            CataloguePrice.objects.filter(model=row.model, changed_at__lt=row.changed_at)
            .order_by("-changed_at")
            .first()
        )
        found.append(
            {
                "model": row.model.model_id,
                "at": row.changed_at,
                "before": before.prices() if before else {},
                "after": row.prices(),
            }
        )
    return found
