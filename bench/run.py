"""Benchmark: server time and query count of every page, the JSON API and /metrics, at 10 k and 1 M rows.

    python bench/run.py [--rows 10000,1000000] [--engines sqlite,postgres] [--requests 15] [--refill]

Each (engine, rows) pair runs in its own process with DATABASE_URL set: SQLite files under
bench/results/, PostgreSQL databases creditmon_bench_<rows> (BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432). A database is filled once with checks every 5 minutes for
10 keys, ending now (1 M rows is about a year), and reused while its newest row is under an hour old.
It also measures one check (monitor.check_all against the in-process simulator) against a bare
requests.get round trip to the same simulator. Prints a table and the 1 M / 10 k ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEYS = 10
INTERVAL_MINUTES = 5
PAGE_TARGET_MS = 50.0
RATIO_TARGET = 1.5
CHECK_OVERHEAD_TARGET_MS = 5.0
API_TOKEN = "bench-api-token"
METRICS_TOKEN = "bench-metrics-token"

ENDPOINTS = [
    ("/health/", "/health/", "session"),
    ("/financial/ 30 d", "/financial/?range=30", "session"),
    ("/financial/ all", "/financial/?range=all", "session"),
    ("/alerts/", "/alerts/", "session"),
    ("/api/status/", "/api/status/", "api"),
    ("/api/history/?days=30", "/api/history/?days=30", "api"),
    ("/metrics", "/metrics", "metrics"),
]


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
    parser.add_argument("--rows", default="10000,1000000", help="row counts, comma separated")
    parser.add_argument("--engines", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--requests", type=int, default=15, help="timed requests per endpoint (median)")
    parser.add_argument("--refill", action="store_true", help="refill the databases even if they are fresh")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.requests, args.refill)

    RESULTS.mkdir(parents=True, exist_ok=True)
    rows_list = [int(r) for r in args.rows.split(",")]
    engines = [e.strip() for e in args.engines.split(",")]
    results: dict[tuple[str, int], dict] = {}
    for engine in engines:
        for rows in rows_list:
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
                "CREDITMON_LOG_LEVEL": "WARNING",
                "OPENROUTER_MANAGEMENT_KEY": "",
                "OPENROUTER_API_KEYS": "",
                "NOTIFY_URLS": "",
                "HEARTBEAT_URL": "",
            }
            print(f"== {engine}, {rows:,} rows", flush=True)
            command = [sys.executable, __file__, "--child", engine, str(rows), "--requests", str(args.requests)]
            if args.refill:
                command.append("--refill")
            done = subprocess.run(command, env=env, cwd=ROOT)
            if done.returncode != 0:
                print(f"   failed (exit {done.returncode})")
                continue
            results[(engine, rows)] = json.loads(out.read_text())
    report = table(results, engines, rows_list)
    print(report)
    (RESULTS / "latest.md").write_text(report)
    return 0


def table(results: dict, engines: list[str], rows_list: list[int]) -> str:
    columns = [(e, r) for e in engines for r in rows_list if (e, r) in results]
    names = [name for name, _, _ in ENDPOINTS]
    header = "| endpoint | " + " | ".join(f"{e} {human(r)}: ms (queries)" for e, r in columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    for name in names:
        cells = []
        for col in columns:
            res = results[col]["endpoints"][name]
            flag = "" if res["status"] == 200 else f" HTTP {res['status']}"
            cells.append(f"{res['median_ms']:.1f} ({res['queries']}){flag}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = [
        f"{results[c]['check']['overhead_ms']:.1f} over {results[c]['check']['http_requests']} x "
        f"{results[c]['check']['bare_ms']:.1f} ms HTTP"
        for c in columns
    ]
    lines.append("| one check: overhead | " + " | ".join(cells) + " |")
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
            if b["endpoints"][name]["median_ms"] > PAGE_TARGET_MS:
                missed.append(f"{engine} {name}: {b['endpoints'][name]['median_ms']:.1f} ms at {human(large)}")
        lines.append(f"Ratios {human(large)}/{human(small)} on {engine}: " + ", ".join(ratios))
    for col in columns:
        if results[col]["check"]["overhead_ms"] > CHECK_OVERHEAD_TARGET_MS:
            missed.append(f"{col[0]} {human(col[1])}: check overhead {results[col]['check']['overhead_ms']:.1f} ms")
    lines.append("")
    lines.append(
        f"Targets: every page < {PAGE_TARGET_MS:.0f} ms median at {human(large)} rows, "
        f"{human(large)} <= {RATIO_TARGET}x {human(small)}, check overhead < {CHECK_OVERHEAD_TARGET_MS:.0f} ms."
    )
    lines.append("Missed: " + ("; ".join(missed) if missed else "none"))
    return "\n".join(lines) + "\n"


def human(rows: int) -> str:
    return f"{rows // 1_000_000} M" if rows >= 1_000_000 else f"{rows // 1000} k" if rows >= 1000 else str(rows)


# --- the child: Django set up against one database ---------------------------------------------


def child(engine: str, rows: int, repeat: int, refill: bool) -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import django

    django.setup()
    import fill
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    if refill or not fill.is_fresh(rows, KEYS):
        fill.fill(rows, KEYS, INTERVAL_MINUTES)
        print(f"   filled {rows:,} rows in {time.monotonic() - started:.1f} s", flush=True)
    else:
        print("   reusing the filled database (--refill to rebuild)", flush=True)
        from monitoring.models import DailyFigure, HourlyFigure

        DailyFigure.objects.refresh()  # fold what a previous version of the code left unfolded
        HourlyFigure.objects.refresh()
    fill.analyze()
    result = {"engine": engine, "rows": rows, "endpoints": measure_endpoints(repeat), "check": measure_check(repeat)}
    (RESULTS / f"{engine}-{rows}.json").write_text(json.dumps(result, indent=2))
    return 0


def measure_endpoints(repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
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
        queries = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            response = client.get(path, headers=extra)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(path, headers=extra)
            times.append((time.perf_counter() - started) * 1000)
        found[name] = {
            "status": response.status_code,
            "median_ms": statistics.median(times),
            "queries": len(queries),
            "bytes": len(response.content),
        }
        print(f"   {name:<24} {found[name]['median_ms']:7.1f} ms {len(queries):4d} queries", flush=True)
    return found


def measure_check(repeat: int) -> dict:
    import requests
    from django.conf import settings

    from monitoring import monitor
    from monitoring.simulator import PROD_KEY, Simulator

    sim = Simulator("management").start()
    try:
        settings.OPENROUTER_BASE_URL = sim.url
        settings.OPENROUTER_API_KEY = PROD_KEY
        settings.OPENROUTER_MANAGEMENT_KEY = ""
        settings.OPENROUTER_API_KEYS = ""
        monitor.check_all()  # warm up
        checks, per_check = [], []
        for _ in range(repeat):
            before = len(sim.requests)
            started = time.perf_counter()
            monitor.check_all()
            checks.append((time.perf_counter() - started) * 1000)
            per_check.append(len(sim.requests) - before)
        bare = []
        for _ in range(repeat):
            started = time.perf_counter()
            requests.get(f"{sim.url}/key", headers={"Authorization": f"Bearer {PROD_KEY}"}, timeout=5)
            bare.append((time.perf_counter() - started) * 1000)
    finally:
        sim.stop()
    http_requests = statistics.median(per_check)
    check_ms, bare_ms = statistics.median(checks), statistics.median(bare)
    result = {
        "check_ms": check_ms,
        "bare_ms": bare_ms,
        "http_requests": http_requests,
        "overhead_ms": check_ms - http_requests * bare_ms,
    }
    print(
        f"   one check {check_ms:.1f} ms = {http_requests:g} HTTP x {bare_ms:.1f} ms + {result['overhead_ms']:.1f} ms",
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
