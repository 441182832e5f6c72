"""Benchmark: server time and query count of every page, the JSON API and /metrics, on the same year at two densities.

    python bench/run.py [--intervals 500,5] [--engines sqlite,postgres] [--requests 31] [--refill]
    python bench/run.py --quick      # a developer's loop: the sparse year on SQLite, 9 requests a figure

Both fills cover the same span (SPAN_DAYS, a year, ending now) for 10 keys: one reading every 500
minutes (10 k rows) and every 5 minutes (1 M rows). A page that draws every day of the history draws
as many days at both, so the ratio between them says how a path scales with the table's size alone.
Each (engine, density) runs in its own process with DATABASE_URL set: SQLite files under
bench/results/, PostgreSQL databases creditmon_bench_<rows> (BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432), reused while the newest row is under an hour old.
It also measures one check (monitor.check_all against the in-process simulator) against a bare
requests.get round trip to the same simulator, and one check of 150 keys listed by a management key.
Every figure is the median of --requests timings with its spread (10th to 90th percentile) beside it;
the report starts with the machine it ran on (CPUs, load before and after, engine versions).
Prints a table and the 1 M / 10 k ratios, and writes it to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEYS = 10
SPAN_DAYS = 365  # both densities cover the same year
PAGE_TARGET_MS = 50.0
RATIO_TARGET = 1.5
LISTED_KEYS = 150  # the simulator's many-keys scenario
API_TOKEN = "bench-api-token"
METRICS_TOKEN = "bench-metrics-token"

ENDPOINTS = [
    ("/health/", "/health/", "session"),
    ("/financial/ 30 d", "/financial/?range=30", "session"),
    ("/financial/ 90 d", "/financial/?range=90", "session"),
    ("/financial/ all", "/financial/?range=all", "session"),
    ("/alerts/", "/alerts/", "session"),
    ("/api/status/", "/api/status/", "api"),
    ("/api/history/?days=30", "/api/history/?days=30", "api"),
    ("/api/history/?days=365", "/api/history/?days=365", "api"),
    ("/metrics", "/metrics", "metrics"),
]


def rows_for(interval_minutes: int) -> int:
    """Rows a fill of SPAN_DAYS at one reading every `interval_minutes` for KEYS keys writes."""
    return KEYS * (SPAN_DAYS * 24 * 60 // interval_minutes)


def database_url(engine: str, rows: int) -> str:
    if engine == "sqlite":
        return f"sqlite:///{RESULTS / f'bench-{rows}.sqlite3'}"
    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    return f"{base}/creditmon_bench_{rows}"


def ensure_postgres_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# --- the parent: one child process per (engine, rows) -----------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="500,5", help="minutes between readings, comma separated (same year)")
    parser.add_argument("--engines", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--requests", type=int, default=None, help="timed requests per figure (31; 9 with --quick)")
    parser.add_argument("--refill", action="store_true", help="refill the databases even if they are fresh")
    parser.add_argument("--quick", action="store_true", help="the sparse year on SQLite only, 9 requests a figure")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "INTERVAL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests is None:
        args.requests = 9 if args.quick else 31
    if args.quick:
        args.intervals = "500" if "--intervals" not in sys.argv else args.intervals
        args.engines = "sqlite" if "--engines" not in sys.argv else args.engines
    if args.child:
        return child(args.child[0], int(args.child[1]), args.requests, args.refill)

    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    intervals = [int(m) for m in args.intervals.split(",")]
    rows_list = [rows_for(m) for m in intervals]
    engines = [e.strip() for e in args.engines.split(",")]
    results: dict[tuple[str, int], dict] = {}
    for engine in engines:
        for interval, rows in zip(intervals, rows_list, strict=True):
            url = database_url(engine, rows)
            if engine == "postgres":
                ensure_postgres_database(url)
            out = RESULTS / f"{engine}-{rows}.json"
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "creditmon.settings",
                "DATABASE_URL": url,
                "REDIS_URL": "",
                "DJANGO_DEBUG": "false",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # DEBUG off refuses the development key
                "DJANGO_ALLOWED_HOSTS": "testserver localhost",
                "DJANGO_SECURE_COOKIES": "false",
                "STATICFILES_BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
                "API_TOKEN": API_TOKEN,
                "METRICS_TOKEN": METRICS_TOKEN,
                "CREDITMON_LOG_DIR": str(RESULTS / "logs"),
                "CREDITMON_LOG_LEVEL": "ERROR",  # the 150-key check warns of low keys: not a result
                "OPENROUTER_MANAGEMENT_KEY": "",
                "OPENROUTER_API_KEYS": "",
                "NOTIFY_URLS": "",
                "HEARTBEAT_URL": "",
            }
            print(f"== {engine}, {rows:,} rows ({SPAN_DAYS} days, one reading every {interval} min)", flush=True)
            command = [sys.executable, __file__, "--child", engine, str(interval), "--requests", str(args.requests)]
            if args.refill:
                command.append("--refill")
            done = subprocess.run(command, env=env, cwd=ROOT)
            if done.returncode != 0:
                print(f"   failed (exit {done.returncode})")
                continue
            results[(engine, rows)] = json.loads(out.read_text())
    report = machine(results, load_before, args.requests) + "\n" + table(results, engines, rows_list)
    print(report)
    (RESULTS / "latest.md").write_text(report)
    return 0


def machine(results: dict, load_before: tuple, repeat: int) -> str:
    """Where and when the figures were taken: they mean little without it."""
    import django

    engines = sorted({f"{r['engine_version']}" for r in results.values()})
    load_after = os.getloadavg()
    return (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"Django {django.get_version()}, {', '.join(engines)}.\n"
        f"Load average (1/5/15 min) before {fmt_load(load_before)}, after {fmt_load(load_after)}. "
        f"Each figure: median of {repeat} requests [10th-90th percentile] (queries per request).\n"
    )


def fmt_load(load: tuple) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def spread(times: list[float]) -> dict:
    """Median and the 10th-90th percentile of timings in ms."""
    deciles = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else times * 9
    return {"median_ms": statistics.median(times), "p10_ms": deciles[0], "p90_ms": deciles[-1], "n": len(times)}


def cell(res: dict) -> str:
    return f"{res['median_ms']:.1f} [{res['p10_ms']:.1f}-{res['p90_ms']:.1f}]"


def table(results: dict, engines: list[str], rows_list: list[int]) -> str:
    columns = [(e, r) for e in engines for r in rows_list if (e, r) in results]
    names = [name for name, _, _ in ENDPOINTS]
    header = "| endpoint | " + " | ".join(f"{e} {human(r)}: ms [p10-p90] (queries)" for e, r in columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    for name in names:
        cells = []
        for col in columns:
            res = results[col]["endpoints"][name]
            flag = "" if res["status"] == 200 else f" HTTP {res['status']}"
            cells.append(f"{cell(res)} ({res['queries']}){flag}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    checks = [results[c]["check"] for c in columns]
    lines.append("| one check: total | " + " | ".join(f"{cell(c['check'])} ({c['queries']})" for c in checks) + " |")
    lines.append("| bare requests.get | " + " | ".join(cell(c["bare"]) for c in checks) + " |")
    lines.append(
        "| one check: own work | "
        + " | ".join(f"{c['overhead_ms']:.1f} beyond {c['http_requests']:g} HTTP" for c in checks)
        + " |"
    )
    listed = [results[c]["listed"] for c in columns]
    lines.append(
        f"| {LISTED_KEYS} listed keys: total | "
        + " | ".join(f"{cell(x['check'])} ({x['queries']})" for x in listed)
        + " |"
    )
    lines.append(
        f"| {LISTED_KEYS} listed keys: own work per key | "
        + " | ".join(f"{x['per_key_ms']:.2f} ({x['http_requests']:g} HTTP)" for x in listed)
        + " |"
    )
    lines.append("")
    small, large = min(rows_list), max(rows_list)
    missed = []
    for engine in engines:
        if (engine, small) not in results or (engine, large) not in results or small == large:
            continue
        a, b = results[(engine, small)], results[(engine, large)]
        ratios = []
        for name in names:
            ratio = b["endpoints"][name]["median_ms"] / max(a["endpoints"][name]["median_ms"], 0.001)
            ratios.append(f"{name} {ratio:.2f}x")
            if ratio > RATIO_TARGET:
                missed.append(f"{engine} {name}: {human(large)}/{human(small)} = {ratio:.2f}x (target {RATIO_TARGET}x)")
        lines.append(f"Ratios {human(large)}/{human(small)} on {engine}: " + ", ".join(ratios))
        every, thirty = b["endpoints"]["/financial/ all"]["median_ms"], b["endpoints"]["/financial/ 30 d"]["median_ms"]
        lines.append(f"/financial/ all over 30 d at {human(large)} on {engine}: {every / max(thirty, 0.001):.2f}x")
    for col in columns:
        if col[1] != large:
            continue
        for name in names:
            if results[col]["endpoints"][name]["median_ms"] > PAGE_TARGET_MS:
                ms = results[col]["endpoints"][name]["median_ms"]
                missed.append(f"{col[0]} {name}: {ms:.1f} ms at {human(col[1])}")
    for engine in engines:
        missed += [f"{engine} {human(rows)}: the run failed" for rows in rows_list if (engine, rows) not in results]
    lines.append("")
    ratio = f"{human(large)} <= {RATIO_TARGET}x {human(small)}, " if small != large else ""
    lines.append(
        f"Targets: every path < {PAGE_TARGET_MS:.0f} ms median at {human(large)}, {ratio}on the same {SPAN_DAYS} days. "
        "A check's own work is reported, no longer a target: it is noise beside OpenRouter's round trip."
    )
    lines.append("Missed: " + ("; ".join(missed) if missed else "none"))
    return "\n".join(lines) + "\n"


def human(rows: int) -> str:
    return f"{rows // 1_000_000} M" if rows >= 1_000_000 else f"{rows // 1000} k" if rows >= 1000 else str(rows)


# --- the child: Django set up against one database ---------------------------------------------


def child(engine: str, interval: int, repeat: int, refill: bool) -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import django

    django.setup()
    import fill
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    rows = rows_for(interval)
    if refill or not fill.is_fresh(rows, KEYS):
        fill.fill(rows, KEYS, interval)
        print(f"   filled {rows:,} rows in {time.monotonic() - started:.1f} s", flush=True)
    else:
        print("   reusing the filled database (--refill to rebuild)", flush=True)
        from monitoring.models import DailyFigure, HourlyFigure

        DailyFigure.objects.refresh()  # fold what a previous version of the code left unfolded
        HourlyFigure.objects.refresh()
    fill.analyze()
    result = {
        "engine": engine,
        "engine_version": engine_version(),
        "rows": rows,
        "endpoints": measure_endpoints(repeat),
        "check": measure_check(repeat),
        "listed": measure_listed_keys(max(3, repeat // 3)),
    }
    (RESULTS / f"{engine}-{rows}.json").write_text(json.dumps(result, indent=2))
    return 0


def engine_version() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"PostgreSQL {connection.cursor().connection.info.server_version // 10000}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version}"


def count_queries():
    """A context manager counting the queries run inside it (the list of their SQL)."""
    from django.db import connection

    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    wrapper = connection.execute_wrapper(count)
    wrapper.queries = queries
    return wrapper


def measure_endpoints(repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})
    session = Client()
    session.force_login(user)
    anonymous = Client()
    headers = {
        "api": {"Authorization": f"Bearer {API_TOKEN}"},
        "metrics": {"Authorization": f"Bearer {METRICS_TOKEN}"},
    }
    found = {}
    for name, path, auth in ENDPOINTS:
        client = session if auth == "session" else anonymous
        extra = headers.get(auth, {})
        for _ in range(2):  # warm caches, templates, the connection
            response = client.get(path, headers=extra)
        counter = count_queries()
        with counter:
            response = client.get(path, headers=extra)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(path, headers=extra)
            times.append((time.perf_counter() - started) * 1000)
        found[name] = {
            "status": response.status_code,
            **spread(times),
            "queries": len(counter.queries),
            "bytes": len(response.content),
        }
        print(f"   {name:<24} {cell(found[name]):>22} ms {len(counter.queries):4d} queries", flush=True)
    return found


def bare_round_trips(sim, repeat: int) -> list[float]:
    """A plain requests.get to the same simulator: the HTTP cost a check cannot avoid."""
    import requests

    from monitoring.simulator import PROD_KEY

    times = []
    for _ in range(repeat + 1):  # the first one warms up
        started = time.perf_counter()
        requests.get(f"{sim.url}/key", headers={"Authorization": f"Bearer {PROD_KEY}"}, timeout=5)
        times.append((time.perf_counter() - started) * 1000)
    return times[1:]


def timed_checks(sim, repeat: int) -> tuple[list[float], list[int], int]:
    """(ms per check_all, HTTP requests per check, queries of one check)."""
    from monitoring import monitor

    monitor.check_all()  # warm up
    counter = count_queries()
    with counter:
        monitor.check_all()
    checks, per_check = [], []
    for _ in range(repeat):
        before = len(sim.requests)
        started = time.perf_counter()
        monitor.check_all()
        checks.append((time.perf_counter() - started) * 1000)
        per_check.append(len(sim.requests) - before)
    return checks, per_check, len(counter.queries)


def measure_check(repeat: int) -> dict:
    from django.conf import settings

    from monitoring.simulator import PROD_KEY, Simulator

    sim = Simulator("management").start()
    try:
        settings.OPENROUTER_BASE_URL = sim.url
        settings.OPENROUTER_API_KEY = PROD_KEY
        settings.OPENROUTER_MANAGEMENT_KEY = ""
        settings.OPENROUTER_API_KEYS = ""
        checks, per_check, queries = timed_checks(sim, repeat)
        bare = bare_round_trips(sim, repeat)
    finally:
        sim.stop()
    http_requests = statistics.median(per_check)
    check, bare_fig = spread(checks), spread(bare)
    result = {
        "check": check,
        "bare": bare_fig,
        "http_requests": http_requests,
        "queries": queries,
        "overhead_ms": check["median_ms"] - http_requests * bare_fig["median_ms"],
    }
    print(
        f"   one check {cell(check)} ms = {http_requests:g} HTTP x {cell(bare_fig)} ms "
        f"+ {result['overhead_ms']:.1f} ms, {queries} queries",
        flush=True,
    )
    return result


def measure_listed_keys(repeat: int) -> dict:
    """One check of the 150 keys a management key lists: our own work per key beyond the HTTP calls."""
    from django.conf import settings

    from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY, Simulator

    sim = Simulator("many-keys").start()
    try:
        settings.OPENROUTER_BASE_URL = sim.url
        settings.OPENROUTER_API_KEY = PROD_KEY
        settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
        settings.OPENROUTER_API_KEYS = ""
        checks, per_check, queries = timed_checks(sim, repeat)
        bare = bare_round_trips(sim, repeat)
    finally:
        settings.OPENROUTER_MANAGEMENT_KEY = ""
        sim.stop()
    http_requests = statistics.median(per_check)
    check, bare_fig = spread(checks), spread(bare)
    own = check["median_ms"] - http_requests * bare_fig["median_ms"]
    result = {
        "check": check,
        "bare": bare_fig,
        "http_requests": http_requests,
        "queries": queries,
        "per_key_ms": own / LISTED_KEYS,
    }
    print(
        f"   {LISTED_KEYS} listed keys {cell(check)} ms, {http_requests:g} HTTP, {queries} queries: "
        f"{result['per_key_ms']:.2f} ms own work per key",
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
