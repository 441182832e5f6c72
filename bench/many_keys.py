"""Benchmark: one check of 10,000 keys listed by a management key, then every page and endpoint.

    python bench/many_keys.py [--keys 10000] [--requests 9] [--engine sqlite|postgres] [--no-memory] [--check-only]

Starts the simulator's many-keys world scaled to --keys (in a process of its own, as OpenRouter is another
machine), runs the scheduled job (monitor.run_monitor: the checks, the activity sync, the alert rules, their
agent tasks and notifications; --check-only: monitor.check_all, the checks alone, as bench/run.py times a
check) against it on a fresh database,
and prints how long the check took and the memory it used (the process's peak RSS, and Python's own
peak allocation from tracemalloc on a further check). Then each page and endpoint is timed through
Django's test client (median of --requests, a logged-in user or the API and metrics tokens, as
bench/run.py does). Prints a table and "Missed: none", or what missed the targets: every path under
PAGE_TARGET_MS, the check under CHECK_TARGET_S. Nothing is asserted.

SQLite: a temporary file, removed at the end. PostgreSQL: the database named by DATABASE_URL
(created if missing, emptied first), e.g.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/creditmon_manykeys python bench/many_keys.py --engine postgres
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE_TARGET_MS = 300.0
CHECK_TARGET_S = 30.0
API_TOKEN = "bench-api-token"
METRICS_TOKEN = "bench-metrics-token"

ENDPOINTS = [
    ("/health/", "/health/", "session"),
    ("/health/?q=key-12", "/health/?q=key-12", "session"),
    ("/health/?page=40", "/health/?page=40", "session"),
    ("/alerts/", "/alerts/", "session"),
    ("/financial/", "/financial/", "session"),
    ("/financial/?range=all", "/financial/?range=all", "session"),
    ("/api/status/", "/api/status/", "api"),
    ("/api/status/?page=3&per_page=100", "/api/status/?page=3&per_page=100", "api"),
    ("/api/status/?level=warning", "/api/status/?level=warning", "api"),
    ("/api/history/?days=30", "/api/history/?days=30", "api"),
    ("/metrics", "/metrics", "metrics"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000, help="keys the management key lists (10000)")
    parser.add_argument("--requests", type=int, default=9, help="timed requests per path (9)")
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-memory", action="store_true", help="skip the further check under tracemalloc")
    parser.add_argument("--check-only", action="store_true", help="time the checks alone, not the whole job")
    args = parser.parse_args()

    folder = tempfile.TemporaryDirectory(prefix="creditmon-manykeys-")
    if args.engine == "sqlite":
        url = f"sqlite:///{Path(folder.name) / 'bench.sqlite3'}"
    else:
        url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/creditmon_manykeys")
        fresh_postgres_database(url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "creditmon.settings",
            "DATABASE_URL": url,
            "REDIS_URL": "",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "testserver localhost",
            "DJANGO_SECURE_COOKIES": "false",
            "STATICFILES_BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
            "API_TOKEN": API_TOKEN,
            "METRICS_TOKEN": METRICS_TOKEN,
            "CREDITMON_LOG_DIR": folder.name,
            "CREDITMON_LOG_LEVEL": "ERROR",  # thousands of low keys warn: not a result
            "OPENROUTER_MANAGEMENT_KEY": "",
            "OPENROUTER_API_KEYS": "",
            "NOTIFY_URLS": "",
            "HEARTBEAT_URL": "",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        check = measure_check(args.keys, not args.no_memory, not args.check_only)
        endpoints = measure_endpoints(args.requests)
    finally:
        folder.cleanup()
    print(report(args, check, endpoints))
    return 0


def fresh_postgres_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def rss_mb() -> float:
    """The process's peak resident set so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_check(keys: int, memory: bool, job: bool) -> dict:
    """One scheduled job (with `job`; else monitor.check_all, as bench/run.py times a check) against the
    simulator listing `keys` keys: the first (every key new), the next (every key known), and optionally a
    third under tracemalloc for Python's peak allocation."""
    from django.conf import settings

    from monitoring import monitor
    from monitoring.models import CreditLog
    from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

    sim_url, sim_process = simulator_process(keys)
    run = monitor.run_monitor if job else monitor.check_all
    found = {"keys": keys, "rss_before_mb": rss_mb(), "what": "run_monitor" if job else "check_all"}
    try:
        settings.OPENROUTER_BASE_URL = sim_url
        settings.OPENROUTER_API_KEY = PROD_KEY
        settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
        settings.OPENROUTER_API_KEYS = ""
        for name in ("first", "next"):
            started = time.perf_counter()
            run()
            found[f"{name}_s"] = time.perf_counter() - started
            print(f"   {name} check: {found[f'{name}_s']:.2f} s", flush=True)
        found["rss_after_mb"] = rss_mb()
        if memory:
            tracemalloc.start()
            run()
            found["python_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"   a further check under tracemalloc: peak {found['python_peak_mb']:.1f} MB", flush=True)
    finally:
        settings.OPENROUTER_MANAGEMENT_KEY = ""
        sim_process.terminate()
        sim_process.join(timeout=10)
    found["rows"] = CreditLog.objects.count()
    return found


def simulator_process(keys: int) -> tuple[str, multiprocessing.Process]:
    """The simulated OpenRouter listing `keys` keys, in a process of its own as the real one is another machine:
    its work does not share this process's interpreter lock, so what is timed is the monitor's own. Returns its
    URL and the process (terminate it when done)."""
    from django.db import connections

    from monitoring.simulator import Simulator

    connections.close_all()  # nothing of the database crosses the fork
    here, there = multiprocessing.Pipe()

    def serve() -> None:
        sim = Simulator()
        sim.many_keys = keys
        sim.set_scenario("many-keys")
        sim.start()
        there.send(sim.url)
        threading.Event().wait()  # until terminated

    process = multiprocessing.get_context("fork").Process(target=serve, name="openrouter-sim", daemon=True)
    process.start()
    return here.recv(), process


def measure_endpoints(repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})
    session = Client()
    session.force_login(user)
    anonymous = Client()
    headers = {"api": {"Authorization": f"Bearer {API_TOKEN}"}, "metrics": {"Authorization": f"Bearer {METRICS_TOKEN}"}}
    found = {}
    for name, path, auth in ENDPOINTS:
        client = session if auth == "session" else anonymous
        extra = headers.get(auth, {})
        response = client.get(path, headers=extra)  # warm templates and the connection
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(path, headers=extra)
            times.append((time.perf_counter() - started) * 1000)
        found[name] = {"status": response.status_code, "median_ms": statistics.median(times), "max_ms": max(times)}
        found[name]["kb"] = len(response.content) / 1024
        print(f"   {name:<36} {found[name]['median_ms']:8.1f} ms  {found[name]['kb']:8.1f} kB", flush=True)
    return found


def report(args, check: dict, endpoints: dict) -> str:
    from django.db import connection

    engine = connection.vendor
    lines = [
        f"{check['keys']:,} listed keys on {engine}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"median of {args.requests} requests.",
        "",
        "| path | median ms | max ms | kB | HTTP |",
        "| --- | --- | --- | --- | --- |",
    ]
    missed = []
    for name, res in endpoints.items():
        lines.append(f"| {name} | {res['median_ms']:.1f} | {res['max_ms']:.1f} | {res['kb']:.1f} | {res['status']} |")
        if res["median_ms"] > PAGE_TARGET_MS or res["status"] != 200:
            missed.append(f"{name} {res['median_ms']:.0f} ms (HTTP {res['status']})")
    lines.append("")
    lines.append(
        f"Check ({check['what']}): first {check['first_s']:.2f} s, "
        f"next {check['next_s']:.2f} s; {check['rows']:,} log rows. Peak RSS {check['rss_before_mb']:.0f} MB "
        f"before the checks, {check['rss_after_mb']:.0f} MB after"
        + (
            f"; Python's peak allocation in a check {check['python_peak_mb']:.1f} MB."
            if "python_peak_mb" in check
            else "."
        )
    )
    for name in ("first", "next"):
        if check[f"{name}_s"] > CHECK_TARGET_S:
            missed.append(f"{name} check {check[f'{name}_s']:.1f} s")
    lines.append(f"Targets: every path < {PAGE_TARGET_MS:.0f} ms median, the check < {CHECK_TARGET_S:.0f} s.")
    lines.append("Missed: " + ("; ".join(missed) if missed else "none"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
