"""The memory of `make run`: start its process tree (the demo, on the embedded SQLite default), use it, then
print each process's role, its proportional set size (PSS: shared pages split between their users) and its private
memory (what stopping it would free), and the total PSS against the target: web + worker under 150 MB.

    .venv/bin/python bench/memory.py [--settle 45]
    WEB_CONCURRENCY=2 GUNICORN_PRELOAD=true .venv/bin/python bench/memory.py   # other shapes, same table

Linux only (/proc/<pid>/smaps_rollup). Nothing is asserted: it prints numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB = 150.0  # web + worker, issue 22


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            found.setdefault(ppid, []).append(int(entry.name))
    return {ppid: sorted(pids) for ppid, pids in found.items()}  # in creation order (no pid wrap-around here)


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def memory_kb(pid: int) -> tuple[int, int, int]:
    """(PSS, private, RSS) in kB from smaps_rollup. Private pages are this process's alone (what stopping it frees);
    PSS adds its share of the pages it shares (libraries, and what a fork has not copied yet)."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    field = {name: int(kb) for name, kb in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return field["Pss"], field["Private_Clean"] + field["Private_Dirty"], field["Rss"]


def alive(pid: int) -> bool:
    """Running, or stopped but not reaped yet: an exited process waiting for its parent (a zombie) is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def roles(root: int) -> list[tuple[int, str, str]]:
    """(pid, group, role) for every process of the tree: supervisor, web (gunicorn) or worker (django-q2)."""
    kids = children_of()
    rows = [(root, "supervisor", "supervisor (creditmon.supervisor, no Django)")]
    for child in kids.get(root, []):
        if "gunicorn" in cmdline(child):
            rows.append((child, "web", "gunicorn master"))
            rows += [(pid, "web", "gunicorn worker (uvicorn, Django)") for pid in kids.get(child, [])]
        elif "runworker" in cmdline(child):  # the Procfile's worker: this process is django-q2's sentinel
            rows.append((child, "worker", "runworker (sentinel, scheduler, monitor and pusher threads)"))
            rows += [(pid, "worker", "django-q2 worker (runs the checks)") for pid in kids.get(child, [])]
        elif "qcluster" in cmdline(child):  # qcluster: a parent that waits, then the sentinel
            rows.append((child, "worker", "qcluster main (waits)"))
            for sentinel in kids.get(child, []):
                rows.append((sentinel, "worker", "qcluster sentinel (guard, scheduler)"))
                rows += cluster_children(kids, sentinel)
        else:
            rows.append((child, "other", cmdline(child)[:60]))
    return rows


def cluster_children(kids: dict[int, list[int]], sentinel: int) -> list[tuple[int, str, str]]:
    spawned = kids.get(sentinel, [])
    workers = len(spawned) - 2  # django-q2 spawns the workers, then the monitor, then the pusher
    names = ["django-q2 monitor (saves results)", "django-q2 pusher (takes tasks)"]
    return [
        (pid, "worker", "django-q2 worker (runs the checks)" if n < workers else names[min(n - workers, 1)])
        for n, pid in enumerate(spawned)
    ]


def use_it(base: str) -> None:
    """Log in as the demo user and read every page once, so the web worker has loaded what it serves."""
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30)
    session.post(
        f"{base}/accounts/login/",
        data={"username": "demo", "password": "creditmon-demo", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
    )
    for path in ("/health/", "/financial/", "/financial/?range=all", "/alerts/", "/api/status/", "/admin/"):
        session.get(base + path, timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=45, help="seconds after the pages, for the first check to run")
    args = parser.parse_args()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="creditmon-memory-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "DATABASE_URL", "REDIS_URL"))}
    env.update(CREDITMON_LOG_DIR=str(work), DJANGO_SECRET_KEY_FILE=str(work / "secret_key"))
    command = [sys.executable, "manage.py", "runapp", "--demo", "--port", str(port), "--demo-db", str(work / "demo.db")]
    app = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            print("make run did not serve within 180 s")
            return 1
        use_it(base)
        time.sleep(args.settle)
        rows = [(pid, group, role, *memory_kb(pid)) for pid, group, role in roles(app.pid)]
    finally:
        stopped = time.monotonic()
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=30)
    while any(alive(row[0]) for row in rows) and time.monotonic() - stopped < 30:
        time.sleep(0.05)  # the whole tree, not only the supervisor
    gone = time.monotonic() - stopped

    web_shape = os.environ.get("WEB_CONCURRENCY", "1"), os.environ.get("GUNICORN_PRELOAD", "false")
    shape = "WEB_CONCURRENCY={} GUNICORN_PRELOAD={}".format(*web_shape)
    print(f"make run (demo, SQLite), {shape}: PSS per process after the pages and the first check\n")
    print(f"{'role':<60} {'pid':>7} {'PSS MB':>8} {'private':>8} {'RSS MB':>8}")
    for pid, _, role, pss, private, rss in rows:
        print(f"{role:<60} {pid:>7} {pss / 1024:>8.1f} {private / 1024:>8.1f} {rss / 1024:>8.1f}")
    totals = {
        group: sum(r[3] for r in rows if r[1] == group) / 1024 for group in ("supervisor", "web", "worker", "other")
    }
    print()
    for group, mb in totals.items():
        if mb:
            print(f"{group:<60} {'':>7} {mb:>8.1f}")
    web_worker = totals["web"] + totals["worker"]
    verdict = "met" if web_worker < TARGET_MB else "MISSED"
    print(f"{'web + worker':<60} {'':>7} {web_worker:>8.1f}   target < {TARGET_MB:.0f} MB: {verdict}")
    print(f"{'everything':<60} {'':>7} {sum(totals.values()):>8.1f}")
    print(f"\nSIGTERM to make run: every process gone after {gone:.1f} s (target < 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
