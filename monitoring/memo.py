"""Figures derived from what the scheduled run stores now and then (the /activity rows and the spend per
workspace, synced once a run), computed once per change and kept in Django's cache.

A page view then costs one version look-up (counts and newest ids, from indexes) instead of grouping a
year of activity again. The version changes with every sync (each upsert stamps `fetched_at`), every new
row and every deleted one (retention, the admin), so a cached figure is never older than the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import connection

from .budgets import WorkspaceSpend
from .models import Activity

TIMEOUT = 6 * 3600  # a version that stays unchanged longer is recomputed anyway


def activity_version() -> str:
    """What changes whenever the stored /activity rows or the spend per workspace change: one query of index
    look-ups (a count, the newest id, the newest fetch), not one aggregate scanning the rows."""
    parts = []
    for model in (Activity, WorkspaceSpend):
        table = connection.ops.quote_name(model._meta.db_table)
        parts += [f"(SELECT COUNT(*) FROM {table})", f"(SELECT MAX(id) FROM {table})",
                  f"(SELECT MAX(fetched_at) FROM {table})"]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts))
        return "|".join(str(value) for value in cursor.fetchone())


def remember(name: str, args: tuple, version: str, compute: Callable[[], Any]) -> Any:
    """`compute()`, or what it gave for the same name, arguments and data version."""
    key = "creditmon:memo:" + hashlib.sha256(repr((name, args, version)).encode()).hexdigest()
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.set(key, found, TIMEOUT)
    return found
