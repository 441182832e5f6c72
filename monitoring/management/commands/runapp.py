"""python manage.py runapp: web server + scheduler worker; the demo against the simulator without a key."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from monitoring import demo
from monitoring.management.base import MonitoringCommand
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY, Simulator

DEMO_CHECK_MINUTES = 5  # the demo checks often so the dashboard visibly moves
DEMO_SIMULATOR_PORT = 8765


def start_simulator() -> Simulator:
    """The simulator on its usual port when free (so the printed commands stay the same), else any."""
    try:
        simulator = Simulator("steady", port=DEMO_SIMULATOR_PORT).start()
    except OSError:
        simulator = Simulator("steady").start()
    for token, _, usage, _, limit, *_ in demo.DEMO_KEYS:  # where the demo's invented month ends
        simulator.set_key(token, usage=usage, limit=limit)
    return simulator


class Command(MonitoringCommand):
    requires_system_checks = []  # checked below once the mode is known: the demo needs no key
    help = "Run the web server and the django-q2 worker; demo mode (simulated OpenRouter) when no key is set."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--demo", action="store_true", help="force demo mode even with a key configured")
        parser.add_argument(
            "--demo-db", default=str(Path(settings.BASE_DIR) / "demo.sqlite3"), help="demo database file"
        )

    def handle(self, *args, **options):
        env = dict(os.environ)
        simulator = None
        has_key = bool(settings.OPENROUTER_API_KEY or settings.OPENROUTER_MANAGEMENT_KEY)
        is_demo = options["demo"] or not has_key
        if is_demo:
            simulator = start_simulator()
            env.update(demo_settings(simulator.url, options["demo_db"]), CHECK_INTERVAL_MINUTES=str(DEMO_CHECK_MINUTES))
        else:
            self.check(display_num_errors=False)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        migrated = subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env)
        if migrated.returncode:  # migrate has said why in one line (a database it cannot reach, say)
            raise CommandError("nothing started: the database could not be migrated", returncode=migrated.returncode)
        if is_demo:
            subprocess.run([*manage, "seeddemo"], env=env, check=True)
            subprocess.run([*manage, "syncactivity", "--backfill"], env=env, check=False)
        children = [
            subprocess.Popen([*manage, "qcluster"], env=env),
            subprocess.Popen(
                [*manage, "runserver", f"{options['host']}:{options['port']}", "--noreload", "--skip-checks"], env=env
            ),
        ]
        self.banner(options, is_demo, simulator, has_key)
        self.stdout.flush()
        stop = {"now": False}

        def request_stop(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            while not stop["now"] and all(child.poll() is None for child in children):
                time.sleep(0.5)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()  # SIGTERM: qcluster stops gracefully, runserver exits
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            if simulator:
                simulator.stop()

    def banner(self, options, is_demo, simulator, has_key=False):
        url = f"http://{options['host']}:{options['port']}/"
        lines = ["", f"creditmon is running at {url}  (Ctrl-C stops the web server and the worker)"]
        if is_demo:
            why = "--demo given: your key is left alone" if has_key else "no OPENROUTER_API_KEY is set"
            lines += [
                f"DEMO MODE ({why}): a SIMULATED OpenRouter answers at {simulator.url} and the figures are invented.",
                f"Log in as `{demo.DEMO_USERNAME}` with password `{demo.DEMO_PASSWORD}`.",
                f"Demo data lives in {options['demo_db']}."
                + ("" if has_key else " Put OPENROUTER_API_KEY in .env to monitor your real key."),
                "A check from the command line against the simulator, while this runs (the demo's own",
                "settings, so it sees what the pages see and .env cannot lend it a real key or channel):",
                f"  {demo_command(simulator.url, options['demo_db'])}",
            ]
        else:
            lines += [
                f"Monitoring your OpenRouter key every {settings.CHECK_INTERVAL_MINUTES} minutes.",
                "First time? Create a login with: .venv/bin/python manage.py createsuperuser",
            ]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)) + "\n")


def demo_settings(simulator_url: str, demo_db: str) -> dict[str, str]:
    """The environment of the demo's processes, and of the checkcredits line it prints."""
    return {
        "CREDITMON_DEMO": "true",
        "OPENROUTER_BASE_URL": simulator_url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
        # Set (empty) so .env cannot fill them: the demo never watches real keys, notifies real
        # channels, pings a real heartbeat or joins a real worker cluster.
        "OPENROUTER_API_KEYS": "",
        "NOTIFY_URLS": "",
        "HEARTBEAT_URL": "",
        "REDIS_URL": "",
        # Its own database, so the demo never mixes invented history with real checks.
        "DATABASE_URL": f"sqlite:///{demo_db}",
    }


def demo_command(simulator_url: str, demo_db: str) -> str:
    words = [f"{name}={value}" for name, value in demo_settings(simulator_url, demo_db).items()]
    return " ".join(words) + " .venv/bin/python manage.py checkcredits"
