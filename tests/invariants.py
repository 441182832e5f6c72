"""The figures' invariants, read from every surface: the status object, `checkcredits --json --all`, /api/status/
and the Financial page's context. Shared by the demo's test and the property tests over generated worlds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import forecast, status
from monitoring.models import Activity, ApiKey, CreditLog

CENT = 0.005  # figures are shown in cents; the JSON rounds rates to 4 places
RATE_SLACK = 1e-4


def _time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _from_dict(payload: dict) -> dict:
    """The figures the invariants need from a status dict (`--json` and /api/status/ share its shape)."""
    keys = {}
    for key in payload["keys"]:
        if key["key_hash"] is None:
            continue
        spread = key["exhaustion_range"] or {}
        keys[key["key"]] = {
            "rate7": key["burn_rate_per_day"].get("7d"),
            "date": _time(key["exhaustion_date"]),
            "earliest": _time(spread.get("earliest")),
            "latest": _time(spread.get("latest")),
        }
    return {"account": {"rate": payload["account"]["burn_rate_per_day"]}, "keys": keys}


def read_surfaces(client, token: str) -> dict[str, dict]:
    """{surface: {"account": {...}, "keys": {name: {...}}}} for the same data on each surface."""
    found: dict[str, dict] = {}
    built = status.build(timezone.now())
    found["status"] = {
        "account": {"rate": built.account.burn.rate},
        "keys": {
            s.name: {
                "rate7": s.rates["7d"].rate,
                "date": s.exhaustion_date,
                "earliest": s.exhaustion_range[0],
                "latest": s.exhaustion_range[1],
            }
            for s in built.keys
            if s.key is not None
        },
    }
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("checkcredits", "--json", "--all", stdout=out, stderr=StringIO())
    found["json"] = _from_dict(json.loads(out.getvalue()))
    found["api"] = _from_dict(client.get("/api/status/", headers={"Authorization": f"Bearer {token}"}).json())
    financial: dict = {"keys": {}}
    for key in ApiKey.objects.watched():
        context = client.get(f"/financial/?key={key.pk}&range=30").context
        data, account = context["key_data"], context["account"]
        month_start = account["month_start"]
        financial["account"] = {"rate": account["burn_rate"], "mtd": account["month_to_date"]}
        financial["keys"][key.display_name] = {
            "rate7": next(r["rate"] for r in data["rates"] if r["days"] == 7),
            "date": data["exhaustion_date"],
            "earliest": data["exhaustion_range"][0],
            "latest": data["exhaustion_range"][1],
            "mtd": data["month_to_date"],
            "month_bars": sum(d["spend"] for d in data["days"] if d["label"] >= month_start.date().isoformat()),
        }
    found["financial"] = financial
    return found


def check_invariants(found: dict[str, dict]) -> None:
    """Account ≥ each key over the same window; month to date = its bars; each date inside its range."""
    for surface, figures in found.items():
        account = figures["account"]
        for name, key in figures["keys"].items():
            where = f"{surface}, {name}"
            if account["rate"] is not None and key["rate7"] is not None:
                assert account["rate"] >= key["rate7"] - RATE_SLACK, f"{where}: the account burns less than its key"
            if key.get("mtd") is not None:
                assert account["mtd"] >= key["mtd"] - CENT, f"{where}: the account's month to date is below its key's"
                bars = key["month_bars"]
                assert key["mtd"] == pytest.approx(bars, abs=CENT), f"{where}: month to date {key['mtd']} ≠ bars {bars}"
            if key["date"] is not None and key["earliest"] is not None:
                assert key["earliest"] <= key["date"], f"{where}: the range starts after its own date"
                assert key["latest"] is None or key["date"] <= key["latest"], f"{where}: the range ends before it"


def daily_disagreements(key: ApiKey, now: datetime, tolerance: float) -> dict:
    """Completed UTC days where the key's spend from its checks and from its stored activity differ."""
    readings = list(CreditLog.objects.filter(key=key, ok=True).order_by("timestamp").values_list("timestamp", "usage"))
    from_checks = forecast.daily_spend(readings, UTC)
    first, today = readings[0][0].astimezone(UTC).date(), now.astimezone(UTC).date()
    found = {}
    for day, spent in from_checks.items():
        if day <= first or day >= today:  # the log's first day began before its first reading; today is not over
            continue
        rows = Activity.objects.filter(api_key_hash=key.hash, date=day)
        if not rows.exists():
            continue
        stored = sum(rows.values_list("usage", flat=True))
        if abs(stored - spent) > tolerance:
            found[day] = (spent, stored)
    return found
