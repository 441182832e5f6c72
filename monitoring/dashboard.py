"""What the dashboard pages show: a bounded number of aggregated queries in, plain values out.

Charts never read one row per check: the database groups the log into hour, day or week buckets
(a few hundred at most) and the pages draw those. The views stay thin: they parse the request,
call one function here and render.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Min, OuterRef, Subquery

from . import advisor, catalogue, forecast, memo, status
from .models import (
    Activity,
    ApiKey,
    CreditLog,
    DailyFigure,
    Level,
    Workspace,
    WorkspaceSpend,
    severity,
    window_annotations,
)

MAX_CARDS = 6  # keys shown as cards on System Health; more keys get a compact table
RANGES = {"7": 7, "30": 30, "90": 90, "all": None}
DEFAULT_RANGE = "30"
TOP_N = 5  # series in a stacked chart before the rest is summed as "Other"
WEEKLY_AFTER_DAYS = 200  # "all" switches to weekly buckets past this span, to stay a few hundred points
BURN_WINDOWS = (("1d", "24 h"), ("7d", "7 days"), ("30d", "30 days"))
MIN_SHARE_TOTAL = 0.005  # dollars: below it a total shows as $0.00 and shares of it mean nothing
WINDOW_DAYS = status.WINDOWS

LEVEL_CSS = status.LEVEL_CSS
OVERDUE_AFTER = timedelta(minutes=5)  # the scheduler looks every 30 s: minutes late means no worker runs it


def reporting_tz() -> tzinfo:
    return ZoneInfo(settings.CREDITMON_TIME_ZONE)


def is_configured() -> bool:
    """A key to check is set (the tokens themselves never leave the check)."""
    return bool(settings.OPENROUTER_API_KEY or settings.OPENROUTER_API_KEYS or settings.OPENROUTER_MANAGEMENT_KEY)


def error_hint(log: CreditLog) -> str:
    """What a person should do about a failed check, in words."""
    status = log.http_status
    if "not set" in log.error:
        return "Add OPENROUTER_API_KEY to .env (see .env.example) or the environment, restart, then press Check now."
    if status in (401, 403):
        return (
            f"The key is invalid or disabled: create a new one at {settings.OPENROUTER_KEYS_URL} "
            "and update OPENROUTER_API_KEY."
        )
    if status == 402:
        return f"The account has run out of credits: top up at {settings.OPENROUTER_TOPUP_URL}."
    if status == 429:
        return "OpenRouter is rate limiting requests: the next check tries again; act only if it persists."
    if status and status >= 500:
        return "OpenRouter is having trouble: retry in a few minutes. The failure is recorded."
    return (
        "The check could not reach OpenRouter or read its answer: check the network and "
        "OPENROUTER_BASE_URL, then press Check now."
    )


def hint_unless_said(log: CreditLog) -> str:
    """The hint, unless the error message already says the same (the client's messages often do)."""
    hint = error_hint(log)
    return "" if hint.split(":")[0].lower() in log.error.lower() else hint


def ms(when: datetime) -> int:
    """Milliseconds since the epoch, the unit the charts' time axes use."""
    return int(when.timestamp() * 1000)


# --- System Health ---------------------------------------------------------------------------


def health(now: datetime, search: str = "", page: str | None = None) -> dict:
    found = status.build(now, pages=True)
    states = [s for s in found.keys if s.key is not None]  # a key-less failure shows as the last error
    last_log = CreditLog.objects.select_related("key").order_by("-timestamp", "-id").first()
    return {
        "many": many_keys(found, search, page) if found.stored is not None else None,
        "configured": is_configured(),
        "status": found,
        "states": states,
        "cards": states[:MAX_CARDS],
        "more_keys": len(states) > MAX_CARDS,
        "overall_level": found.level_css,
        "last_log": last_log,
        "last_error_hint": hint_unless_said(last_log) if last_log and not last_log.ok else "",
        "account": found.account,
        "account_alerts": found.unattached_alerts,
        "next_check": found.next_check,
        "threshold": settings.OPENROUTER_CREDIT_THRESHOLD,
        "topup_url": settings.OPENROUTER_TOPUP_URL,
        "workspaces": workspace_groups(states, now),
    }


def many_keys(found: status.Status, search: str, page: str | None) -> dict:
    """System Health with many keys: the counts by level, and a page of the keys worst first (by the level
    stored at the last check), optionally those whose name or hash starts with `search`, built live."""
    search = search.strip()[:100]
    ranked = ApiKey.objects.watched().search(search).worst_first(found.stale_before)
    keys_page = Paginator(ranked, settings.HEALTH_KEYS_PER_PAGE).get_page(page)
    return {
        "search": search,
        "page": keys_page,
        "states": status.live_statuses(found.now, list(keys_page.object_list)),
        "counts": [{"name": name, "css": name.lower(), "count": n} for name, n in found.counts.items()],
        "total": found.key_count,
    }


WORKSPACE_SPEND_DAYS = 7


def workspace_groups(states: list, now: datetime) -> list[dict]:
    """The keys grouped by the workspace they spend in, worst first, with each workspace's budgets and its spend
    over the last completed UTC days; [] while every key spends in one workspace (nothing to group)."""
    ids = {s.key.workspace_id for s in states if s.key.workspace_id}
    if len(ids) < 2:
        return []
    stored = {w.workspace_id: w for w in Workspace.objects.filter(workspace_id__in=ids)}
    today = now.astimezone(UTC).date()
    spend = WorkspaceSpend.objects.daily_by_workspace(today - timedelta(days=WORKSPACE_SPEND_DAYS))
    groups = []
    for ident in ids:
        members = [s for s in states if s.key.workspace_id == ident]
        row = stored.get(ident)
        days = spend.get(ident, {})
        groups.append(
            {
                "id": ident,
                "name": row.name if row is not None and row.name else ident,
                "states": members,
                "level": max((s.level for s in members), key=severity),
                "budgets": row.budgets if row is not None else [],
                "spend": sum(v for day, v in days.items() if day < today) if days else None,
            }
        )
    groups.sort(key=lambda g: (-severity(g["level"]), g["name"]))
    for group in groups:
        group["level_css"] = Level(group["level"]).label.lower()
    return groups


# --- every page: the state at a glance ------------------------------------------------------


def check_overdue_since(now: datetime, next_check: datetime | None) -> datetime | None:
    """When the scheduled check was due, if it is more than a few minutes late (no worker running it)."""
    return next_check if next_check is not None and now - next_check > OVERDUE_AFTER else None


def at_a_glance(now: datetime, found: status.Status | None = None) -> dict:
    """The one verdict every page shows (tab title, favicon, brand dot, Health's verdict line), read from
    status.build() (`found`: when the view already has it)."""
    found = found if found is not None else status.build(now, pages=True)
    return {  # the level the API, /metrics and the CLI give: UNKNOWN while nothing is watched yet
        "worst_level": found.level,
        "worst_level_name": found.level_name,
        "worst_level_css": found.level_css,
        "level_counts": [{"name": name, "css": name.lower(), "count": n} for name, n in found.counts.items()],
        "key_count": found.key_count,
        "open_alert_count": found.open_alerts,
        "check_overdue_since": check_overdue_since(now, found.next_check),
    }


# --- Financial -------------------------------------------------------------------------------


def range_start(now: datetime, days: int | None, tz: tzinfo) -> datetime | None:
    """Local midnight `days - 1` days ago, so the range holds `days` calendar days including today."""
    if days is None:
        return None
    local = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return local - timedelta(days=days - 1)


def bucket_label(bucket: datetime, kind: str) -> str:
    day = bucket.date().isoformat()
    return f"week of {day}" if kind == "week" else day


def spend_per_bucket(buckets: list[dict]) -> list[float]:
    """Spend in each bucket from the cumulative usage at the end of it (and of the one before)."""
    spends, previous = [], None
    for row in buckets:
        high, low = row["high"], row["low"]
        if high is None:
            spends.append(0.0)
            continue
        # The first bucket: its own rise (a key's usage may start at $0.00, which is a reading, not a missing one).
        first = high - (high if low is None else low)
        spends.append(forecast.spend_between(previous, high) if previous is not None else first)
        previous = high
    return spends


def stacked(rows: list[dict], field: str, series: list[str], totals: dict, names: dict) -> dict:
    """Chart.js-ready stacked daily bars: one dataset per series plus "Other" (the rest of the total)."""
    labels = sorted(set(totals) | {row["date"] for row in rows})
    by = defaultdict(float)
    for row in rows:
        by[(row["date"], row[field])] += row["spend"] or 0.0
    datasets = [
        {"label": names.get(value, value), "data": [round(by[(day, value)], 4) for day in labels]} for value in series
    ]
    other = [round(max(totals.get(day, 0.0) - sum(by[(day, v)] for v in series), 0.0), 4) for day in labels]
    if any(other):
        datasets.append({"label": "Other", "data": other})
    return {"labels": [day.isoformat() for day in labels], "datasets": datasets}


def drivers(totals: list[dict], field: str, names: dict) -> list[dict]:
    grand = sum(row["spend"] or 0.0 for row in totals)
    return [
        {
            "name": names.get(row[field], row[field]),
            "spend": row["spend"] or 0.0,
            "calls": row.get("calls"),
            # No share of nothing: a total that shows as $0.00 would make its only row "100.0 %" of it.
            "share": (row["spend"] or 0.0) / grand * 100 if grand >= MIN_SHARE_TOTAL else None,
        }
        for row in totals
    ]


def key_financials(key_status: status.KeyStatus, start: datetime | None, kind: str, tz: tzinfo) -> dict:
    """One key's burn rates, forecast, daily spend bars and remaining-balance line."""
    key, now = key_status.key, key_status.now
    logs = CreditLog.objects.successful().for_key(key)
    # The daily rows (one per key per local day), never the raw log: a year is 365 rows, not 100,000.
    since = (start - timedelta(days=1)).date() if start else None
    buckets = DailyFigure.objects.filter(key=key).buckets(kind, tz, since)
    rows = logs.last_rows(buckets)
    spends = spend_per_bucket(buckets)
    days, balance, limits = [], [], []
    for bucket, spend in zip(buckets, spends, strict=True):
        if start and bucket["bucket"] < start:
            continue  # the bucket before the range only gives the first day its starting usage
        row = rows[bucket["last_id"]]
        days.append({"label": bucket_label(bucket["bucket"], kind), "spend": spend, "remaining": row.remaining})
        if row.remaining is not None:
            balance.append((row.timestamp, row.remaining))
        limits.append((row.timestamp, row.credit_limit, row.account_credits, row.remaining))

    # Month to date from running spend totals: index look-ups, whatever the history.
    month_start, month_end = forecast.month_bounds(now, tz)
    since = month_start - timedelta(days=max(30, settings.BURN_RATE_WINDOW_DAYS))
    readings = CreditLog.objects.filter(key=OuterRef("pk"), ok=True, usage__isnull=False)
    before = readings.filter(timestamp__gte=since, timestamp__lt=month_start).order_by("-timestamp", "-usage", "-id")
    month = {"month": (now - month_start).total_seconds() / forecast.SECONDS_PER_DAY}
    row = (
        ApiKey.objects.filter(pk=key.pk)
        .annotate(**window_annotations(now, month), s_before=Subquery(before.values("spend_total")[:1]))
        .annotate(t_before=Subquery(before.values("timestamp")[:1]))
        .get()
    )
    base = (row.t_before, row.s_before) if row.t_before is not None else (row.t_month, row.s_month)
    mtd = row.s_last - base[1] if base[0] is not None and None not in (row.s_last, base[1]) else 0.0
    if base[0] is not None and None in (row.s_last, base[1]):
        # Rows bulk-loaded without running totals: the database sums the readings instead.
        summed = CreditLog.objects.spend_windows([key], now, {"m": month_start, "s": since}).get(key.pk, {})
        mtd = summed["m"].spent_after if summed else 0.0
    # Burn rates, days left and what binds: the key's status, as on every other surface.
    # A window the readings do not fill says the span it really used ("over the last 18.1 hours").
    rates = [{"label": label, "days": WINDOW_DAYS[name], "rate": key_status.rates[name].rate,
              "span_text": "" if key_status.rates[name].full_window else key_status.rates[name].window_text}
             for name, label in BURN_WINDOWS]  # fmt: skip
    burn = key_status.burn_rate
    latest = key_status.success
    remaining = key_status.remaining
    days_left = key_status.days_left
    line_rate = remaining / days_left if remaining and days_left else burn  # towards what really runs out

    # Top-ups of the key: its cap raised (a purchase for the account is marked on the account's chart).
    marks = dict(forecast.topups([(row[0], row[1]) for row in limits if row[1] is not None]))
    remaining_at = {when: rem for when, _, _, rem in limits}
    topup_points = [
        {"x": ms(when), "y": remaining_at[when], "amount": round(amount, 2)}
        for when, amount in sorted(marks.items())
        if remaining_at.get(when) is not None
    ]
    return {
        "latest": latest,
        "last_check": key_status.log,  # the newest check, failed or not ("latest" is the newest success)
        "remaining": remaining,
        "balance_note": key_status.balance_note,
        "rates": rates,
        "burn_rate": burn,
        "burn_window_text": key_status.burn.window_text,
        # The rate of the money that runs out: the account's when the shared balance binds.
        "binding_rate": key_status.account.burn.rate if key_status.binding == "account" else burn,
        "binding_window_text": (
            key_status.account.burn.window_text if key_status.binding == "account" else key_status.burn.window_text
        ),
        "burn_note": key_status.burn_note,
        "min_span": status.min_span_text(),
        "binding": key_status.binding,
        "binding_text": key_status.binding_text,
        "days_left": days_left,
        "exhaustion_date": forecast.exhaustion_date(now, days_left),
        "month_to_date": mtd,
        # Spend stops when the money that binds runs out: the projection never passes what is left.
        "projected_month": forecast.projected_month_spend(mtd, burn, now, tz, days_left) if burn is not None else None,
        "runs_out_this_month": days_left is not None and now + timedelta(days=days_left) < month_end,
        "days": days,
        "topups": [{"when": datetime.fromtimestamp(p["x"] / 1000, UTC), "amount": p["amount"]} for p in topup_points],
        "chart": {
            "spend": {
                "labels": [d["label"] for d in days],
                "values": [round(d["spend"], 4) for d in days],
                "bucket": kind,
            },
            "balance": {
                "points": [{"x": ms(when), "y": round(value, 4)} for when, value in balance],
                "forecast": [
                    {"x": ms(when), "y": round(value, 4)}
                    for when, value in forecast.forecast_line(now, remaining, line_rate)
                ],
                "topups": topup_points,
            },
        },
    }


def account_financials(found: status.Status, start: datetime | None, kind: str, tz: tzinfo) -> dict:
    """The account balance line (purchases marked), month to date and the month-end projection."""
    now, account = found.now, found.account
    logs = CreditLog.objects.successful().filter(account_balance__isnull=False)
    buckets = DailyFigure.objects.buckets(kind, tz, start.date() if start else None, account=True)
    rows = logs.last_rows(buckets)
    series = [rows[b["last_id"]] for b in buckets]
    topups = forecast.topups([(row.timestamp, row.account_credits) for row in series])
    balance_at = {row.timestamp: row.account_balance for row in series}
    month_start, month_end = forecast.month_bounds(now, tz)
    mtd, burn, source = None, None, ""
    if account.known:
        burn = account.burn.rate
        mtd, source = status.account_month_to_date(now)  # the figure the budget alert uses
    else:
        # No account figures (no management key): the watched keys' own spend this month, at their own rates.
        per_key = CreditLog.objects.successful().since(month_start - timedelta(days=1)).buckets("day", tz, by_key=True)
        grouped = defaultdict(list)
        for row in per_key:
            grouped[row["key_id"]].append(row)
        if grouped:
            mtd, source = 0.0, "keys"
            for key_rows in grouped.values():
                spends = spend_per_bucket(key_rows)
                mtd += sum(s for row, s in zip(key_rows, spends, strict=True) if row["bucket"] >= month_start)
            rates = [s.burn_rate for s in found.keys if s.key is not None]
            burn = sum(r for r in rates if r is not None) if any(r is not None for r in rates) else None
    account_days = account.days_left if account.known else None  # the shared balance stops the spend too
    projected = None
    if mtd is not None and burn is not None:
        projected = forecast.projected_month_spend(mtd, burn, now, tz, account_days)
    budget = settings.MONTHLY_BUDGET or None
    return {
        "latest": series[-1] if series else None,
        "points": len(series),
        "month_start": month_start,
        "month_end": month_end - timedelta(seconds=1),
        "month_to_date": mtd,
        "burn_rate": burn,
        "burn_window_text": account.burn.window_text if account.known else "",
        "days_left": account.days_left,
        "exhaustion_date": account.exhaustion_date,
        "known": account.known,
        "note": account.note,
        "projected": projected,
        "runs_out_this_month": account_days is not None and now + timedelta(days=account_days) < month_end,
        "source": source,
        "budget": budget,
        "budget_used_percent": mtd / budget * 100 if budget and mtd is not None else None,
        "over_budget": bool(budget and projected is not None and projected > budget),
        "topups": [{"when": when, "amount": amount} for when, amount in topups],
        "chart": {
            "points": [{"x": ms(row.timestamp), "y": round(row.account_balance, 4)} for row in series],
            "topups": [
                {"x": ms(when), "y": round(balance_at[when], 4), "amount": round(amount, 2)} for when, amount in topups
            ],
            "budget": budget,
        },
    }


def sums_by(activity, field: str) -> tuple[list[dict], list[dict], dict]:
    """(the 10 biggest `field` values with spend and calls, the daily rows, spend per day) from one grouped
    query: a year is a row per day per model or key, summed here, not three scans of the activity table."""
    daily = activity.daily_sums(field)
    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    per_day: dict[date, float] = defaultdict(float)
    for row in daily:
        total = totals[row[field]]
        total[0] += row["spend"] or 0.0
        total[1] += row["calls"] or 0
        per_day[row["date"]] += row["spend"] or 0.0
    biggest = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:10]
    return [{field: value, "spend": spend, "calls": calls} for value, (spend, calls) in biggest], daily, per_day


def spend_breakdown(start: datetime | None, tz: tzinfo, activity_since: date | None = None) -> dict:
    """Spend by model and by key from the stored /activity rows (UTC days, as OpenRouter buckets them).

    /activity holds completed UTC days only: a range of N days shows the last N completed days
    (`activity_since` on), so a 7-day chart has 7 days, as its CSV export does.
    """
    since = activity_since if activity_since is not None else start.astimezone(tz).date() if start else None
    sums = memo.remember("activity-sums", (since,), memo.activity_version(), lambda: activity_sums(since))
    key_totals = sums["key_totals"]
    names = {k.hash: k.display_name for k in ApiKey.objects.filter(hash__in=[r["api_key_hash"] for r in key_totals])}
    keys_chart = sums["keys_chart"]
    if keys_chart is not None:  # stacked by hash, once per sync; named here, as the keys are named now
        datasets = [{**d, "label": names.get(d["label"], d["label"])} for d in keys_chart["datasets"]]
        keys_chart = {**keys_chart, "datasets": datasets}
    keys = drivers(key_totals, "api_key_hash", names)
    if not key_totals:
        keys, keys_chart = logged_spend_by_key(start, tz)
    return {
        "models": drivers(sums["model_totals"], "model", {}),
        "keys": keys,
        "keys_source": "activity" if key_totals else "checks",
        "workspaces": sums["workspaces"],
        "chart": {"models": sums["models_chart"], "keys": keys_chart, "workspaces": sums["workspaces_chart"]},
    }


def activity_sums(since: date | None) -> dict:
    """The grouped scans of the stored activity from `since`: totals and stacked daily bars by model, by key
    hash and by workspace. Derived from synced rows only, so pages keep them per sync (monitoring/memo.py)."""
    activity = Activity.objects.all() if since is None else Activity.objects.filter(date__gte=since)
    model_totals, model_days, model_per_day = sums_by(activity.account_wide(), "model")
    if not model_totals:  # only per-key rows stored: their sum is the account's
        model_totals, model_days, model_per_day = sums_by(activity.per_key(), "model")
    top_models = [row["model"] for row in model_totals[:TOP_N]]
    models_chart = stacked(model_days, "model", top_models, model_per_day, {}) if model_totals else None
    key_totals, key_days, key_per_day = sums_by(activity.per_key(), "api_key_hash")
    top_keys = [row["api_key_hash"] for row in key_totals[:TOP_N]]
    keys_chart = stacked(key_days, "api_key_hash", top_keys, key_per_day, {}) if key_totals else None
    workspaces, workspaces_chart = workspace_breakdown(since)
    return {
        "model_totals": model_totals,
        "models_chart": models_chart,
        "key_totals": key_totals,
        "keys_chart": keys_chart,
        "workspaces": workspaces,
        "workspaces_chart": workspaces_chart,
    }


def workspace_breakdown(since: date | None) -> tuple[list[dict], dict | None]:
    """Spend by workspace (GET /activity?group_by=workspace, stored per UTC day): the drivers, and the stacked
    bars when the account spends in more than one workspace (one workspace is every key: nothing to split)."""
    rows = WorkspaceSpend.objects.order_by("date")
    if since is not None:
        rows = rows.filter(date__gte=since)
    daily = [{"date": day, "workspace_id": ws, "spend": usage, "calls": calls}
             for day, ws, usage, calls in rows.values_list("date", "workspace_id", "usage", "requests")]  # fmt: skip
    if not daily:
        return [], None
    totals: dict[str, list] = defaultdict(lambda: [0.0, 0])
    per_day: dict[date, float] = defaultdict(float)
    for row in daily:
        totals[row["workspace_id"]][0] += row["spend"]
        totals[row["workspace_id"]][1] += row["calls"]
        per_day[row["date"]] += row["spend"]
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    names = dict(Workspace.objects.values_list("workspace_id", "name"))
    rows_out = [{"workspace_id": ws, "spend": spend, "calls": calls} for ws, (spend, calls) in ranked]
    top = [ws for ws, _ in ranked[:TOP_N]]
    chart = stacked(daily, "workspace_id", top, per_day, names) if len(ranked) > 1 else None
    return drivers(rows_out, "workspace_id", names), chart


def logged_spend_by_key(start: datetime | None, tz: tzinfo) -> tuple[list[dict], dict | None]:
    """Spend by key from the logged checks (keys given directly, no management key): one query of the daily
    rollups (a key's successful checks per day in the reporting zone), not of every check of every key."""
    DailyFigure.objects.refresh()  # the checks logged since the last fold (the MCP reads this without a page)
    days = DailyFigure.objects.filter(usage_high__isnull=False).order_by("key_id", "day")
    if start:
        days = days.filter(day__gte=(start - timedelta(days=1)).astimezone(tz).date())
    per_key = defaultdict(list)
    for key_id, day, low, high in days.values_list("key_id", "day", "usage_low", "usage_high"):
        per_key[key_id].append({"bucket": datetime.combine(day, time.min, tzinfo=tz), "low": low, "high": high})
    daily: dict[int, dict[date, float]] = {}
    for key_id, rows in per_key.items():
        spends = spend_per_bucket(rows)
        daily[key_id] = {
            row["bucket"].date(): spend
            for row, spend in zip(rows, spends, strict=True)
            if not start or row["bucket"] >= start
        }
    totals = sorted(((sum(d.values()), key_id) for key_id, d in daily.items()), reverse=True)
    totals = [(spend, key_id) for spend, key_id in totals if spend > 0]
    if not totals:
        return [], None
    names = {k.pk: k.display_name for k in ApiKey.objects.filter(pk__in=[key_id for _, key_id in totals[:10]])}
    rows = [{"key": key_id, "spend": spend} for spend, key_id in totals[:10]]
    flat = [{"date": day, "key": key_id, "spend": v} for key_id, d in daily.items() for day, v in d.items()]
    by_day: dict[date, float] = defaultdict(float)
    for item in flat:
        by_day[item["date"]] += item["spend"]
    top = [key_id for _, key_id in totals[:TOP_N]]
    chart = stacked([f for f in flat if f["key"] in top], "key", top, by_day, names)
    return drivers(rows, "key", names), chart


def model_costs(now: datetime, range_name: str, swap: str, found: status.Status) -> dict:
    """The "Model costs" section: the advisor's answer for the page's window (90 days for "all"), the list-price
    changes of the models in it, and the what-if of one swap ("model|replacement")."""
    days = RANGES[range_name] or max(advisor.WINDOWS)
    answer = advisor.advice(now, days)
    used = [m["model"] for m in answer["models"]]
    swaps = [
        {"value": f"{m['model']}|{c['model']}", "model": m["model"], "replacement": c["model"], "saving": c["saving"]}
        for m in answer["models"]
        for c in m["candidates"]
    ]
    what_if, swap_error = None, ""
    if swap:
        model, _, replacement = swap.partition("|")
        try:
            what_if = advisor.what_if(now, days, model, replacement, found)
        except ValueError as exc:
            swap_error = str(exc)
    return {
        "advice": answer,
        "price_changes": catalogue.price_changes(used, now - timedelta(days=days)) if used else [],
        "swaps": swaps,
        "swap": swap,
        "what_if": what_if,
        "swap_error": swap_error,
    }


def financial(now: datetime, key: ApiKey | None, range_name: str, swap: str = "") -> dict:
    tz = reporting_tz()
    DailyFigure.objects.refresh()  # fold the checks logged since the last view (a few rows)
    days = RANGES[range_name]
    start = range_start(now, days, tz)
    kind = "day"
    if days is None and key is not None:
        first = CreditLog.objects.successful().for_key(key).aggregate(first=Min("timestamp"))["first"]
        span = (now - first).days + 1 if first else 1
        kind = "week" if span > WEEKLY_AFTER_DAYS else "day"
        days = span
    today = now.astimezone(tz).date()
    found = status.build(now, pages=True)  # the page's verdict reads it too (request.creditmon_status)
    key_status = found.for_key(key) if key is not None else None
    if key is not None and key_status is None:  # a listed key among many: built live on its own
        key_status = next(iter(status.live_statuses(now, [key])), None)
    ctx = {
        "status": found,
        "configured": is_configured(),
        "range_days": days or 1,
        # The exports cover the same calendar days as the page (whole days in the reporting zone).
        "export_start": start.date() if start else today - timedelta(days=(days or 1) - 1),
        "export_end": today,
        "bucket": kind,
        "budget": settings.MONTHLY_BUDGET or None,
        "next_check": found.next_check,
    }
    ctx["key_data"] = key_financials(key_status, start, kind, tz) if key_status is not None else None
    if ctx["key_data"]:  # the 10th-90th percentile exhaustion range, from the status
        ctx["key_data"]["exhaustion_range"] = key_status.exhaustion_range
    ctx["account"] = account_financials(found, start, kind, tz)
    utc_today = now.astimezone(UTC).date()
    activity_since = utc_today - timedelta(days=RANGES[range_name]) if RANGES[range_name] else None
    ctx["activity_start"] = activity_since or ctx["export_start"]
    ctx["activity_end"] = utc_today - timedelta(days=1)
    ctx["breakdown"] = spend_breakdown(start, tz, activity_since)
    ctx["model_costs"] = model_costs(now, range_name, swap, found)
    ctx["chart"] = {
        **(ctx["key_data"]["chart"] if key is not None else {}),
        "account": ctx["account"]["chart"],
        **ctx["breakdown"]["chart"],
        "tz": settings.CREDITMON_TIME_ZONE,
        "keys_source": ctx["breakdown"]["keys_source"],
    }
    return ctx


# --- Alerts ----------------------------------------------------------------------------------


def explain_quiet(states: list[status.KeyStatus]) -> list[status.KeyStatus]:
    """Why a key that is not OK has no open alert yet (`quiet_reason`), e.g. "1 of 3 failed checks"."""
    needed = max(settings.FAILURES_BEFORE_UNKNOWN, 1)
    for state in states:
        state.quiet_reason = ""
        if state.level == Level.OK or state.alerts:
            continue
        if state.log is None:
            state.quiet_reason = "No alert yet: the key has not been checked."
        elif not state.log.ok and state.conditions.get("check", (Level.UNKNOWN,))[0] == Level.CRITICAL:
            # A rejected key (401) or an empty account (402) needs no count of failures: the next run opens it.
            state.quiet_reason = "No alert yet: the next scheduled check opens it (this failure is critical at once)."
        elif not state.log.ok:
            if "before an alert" not in state.reason:  # the status says it already
                state.quiet_reason = f"No alert yet: {state.failures} of {needed} failed checks before an alert."
        elif state.remaining is None:
            state.quiet_reason = "No alert: an unknown balance cannot cross a threshold."
        else:
            state.quiet_reason = "No alert yet: the next scheduled check evaluates the alert rules."
    return states


def thresholds() -> list[tuple[str, str]]:
    """The thresholds in force, as label and value, for the Alerts page."""
    budget = settings.MONTHLY_BUDGET
    return [
        ("Warning below", f"${settings.OPENROUTER_CREDIT_THRESHOLD:,.2f}"),
        ("Critical at or below", f"${settings.OPENROUTER_MIN_BALANCE:,.2f}"),
        (
            "Days-left forecast",
            f"warning under {settings.FORECAST_WARNING_DAYS:g} days, "
            f"critical under {settings.FORECAST_CRITICAL_DAYS:g}",
        ),
        (
            "Key limit used",
            f"warning at {settings.KEY_LIMIT_WARNING_PERCENT:g}%, critical at {settings.KEY_LIMIT_CRITICAL_PERCENT:g}%",
        ),
        ("Spend spike", f"{settings.SPIKE_FACTOR:g}× the average and over ${settings.SPIKE_MIN_USD:,.2f}"),
        ("Monthly budget", f"${budget:,.2f}" if budget else "none set (MONTHLY_BUDGET)"),
        ("Failures before UNKNOWN", str(settings.FAILURES_BEFORE_UNKNOWN)),
        ("Reminders while open", f"every {settings.REMIND_INTERVAL_HOURS:g} h"),
    ]
