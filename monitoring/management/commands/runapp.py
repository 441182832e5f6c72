"""python manage.py runapp: the Procfile's web server and worker under a small supervisor; the demo without a key.

This command only prepares (mode, demo settings, the plan) and then becomes `creditmon.supervisor`, which imports
nothing from Django: the process that waits costs a few MB, not a whole Django.
"""

import json
import os
import socket
import sys
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from creditmon import supervisor
from monitoring import demo
from monitoring.management.base import MonitoringCommand
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

DEMO_CHECK_MINUTES = 5  # the demo checks often so the dashboard visibly moves
DEMO_SIMULATOR_PORT = 8765


def free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def simulator_port() -> int:
    """The simulator's usual port when free (so the printed commands stay the same), else any free one."""
    if free(DEMO_SIMULATOR_PORT):
        return DEMO_SIMULATOR_PORT
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Command(MonitoringCommand):
    requires_system_checks = []  # checked below once the mode is known: the demo needs no key
    help = "Run the web server (gunicorn) and the django-q2 worker; demo mode (simulated OpenRouter) without a key."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
        parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
        parser.add_argument("--demo", action="store_true", help="force demo mode even with a key configured")
        parser.add_argument(
            "--demo-db", default=str(Path(settings.BASE_DIR) / "demo.sqlite3"), help="demo database file"
        )
        parser.add_argument("--demo-days", type=int, default=30, help="days of history the demo makes (2 to 60)")

    def handle(self, *args, **options):
        has_key = bool(settings.OPENROUTER_API_KEY or settings.OPENROUTER_MANAGEMENT_KEY)
        is_demo = options["demo"] or not has_key
        env = production_env(options["host"], options["port"])
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        prepare = [
            {"argv": [*manage, "migrate", "--noinput", "-v0"], "what": "migrate"},
            {"argv": [*manage, "collectstatic", "--noinput", "-v0"], "what": "collectstatic"},
        ]
        simulator = None
        if is_demo:
            port = simulator_port()
            url = f"http://127.0.0.1:{port}/api/v1"
            # The simulator stands where the demo's month ends now, and seeddemo makes that month up to the same
            # moment; the notifications go to the simulator's inbox, the channel the Alerts page lists.
            now = timezone.now()
            month = demo.Month(now, options["demo_days"])
            simulator = {"port": port, "scenario": "steady", "state": month.state(now, live=True)}
            notify_url = f"json://127.0.0.1:{port}/_sim/inbox"
            env.update(
                demo_settings(url, options["demo_db"], notify_url), CHECK_INTERVAL_MINUTES=str(DEMO_CHECK_MINUTES)
            )
            seed = [*manage, "seeddemo", "--at", now.isoformat(), "--days", str(options["demo_days"])]
            prepare += [{"argv": seed, "what": "seeddemo"}]
        else:
            self.check(display_num_errors=False)
            url = ""
        entries = supervisor.procfile()
        plan = {
            "prepare": prepare,
            "processes": {"web": entries["web"], "worker": entries["worker"]},
            "simulator": simulator,
            "banner": self.banner(options, is_demo, url, has_key),
        }
        env[supervisor.PLAN_VARIABLE] = json.dumps(plan)
        self.stdout.flush()
        sys.stdout.flush()
        # Becomes the supervisor: same process id, so signals sent to `make run` reach it.
        os.execve(sys.executable, [sys.executable, "-m", "creditmon.supervisor"], env)

    def banner(self, options, is_demo, simulator_url: str, has_key=False) -> str:
        url = f"http://{options['host']}:{options['port']}/"
        lines = ["", f"creditmon is running at {url}  (Ctrl-C stops the web server and the worker)"]
        if is_demo:
            why = "--demo given: your key is left alone" if has_key else "no OPENROUTER_API_KEY is set"
            lines += [
                f"DEMO MODE ({why}): a SIMULATED OpenRouter answers at {simulator_url} and the figures are invented.",
                f"Log in as `{demo.DEMO_USERNAME}` with password `{demo.DEMO_PASSWORD}`.",
                f"Demo data lives in {options['demo_db']}."
                + ("" if has_key else " Put OPENROUTER_API_KEY in .env to monitor your real key."),
                "A check from the command line against the simulator, while this runs (the demo's own",
                "settings, so it sees what the pages see and .env cannot lend it a real key or channel):",
                f"  {demo_command(simulator_url, options['demo_db'])}",
            ]
        else:
            lines += [
                f"Monitoring your OpenRouter key every {settings.CHECK_INTERVAL_MINUTES} minutes.",
                "First time? Create a login with: .venv/bin/python manage.py createsuperuser",
            ]
        return self.style.SUCCESS("\n".join(lines))


def production_env(host: str, port: int) -> dict[str, str]:
    """The children's environment: served like production (gunicorn, DEBUG off unless asked for, a kept key)."""
    env = dict(os.environ)
    env["HOST"], env["PORT"] = host, str(port)
    # DEBUG only when asked for (DJANGO_DEBUG=true in the environment or .env).
    env["DJANGO_DEBUG"] = os.environ.get("DJANGO_DEBUG", "").strip() or "false"
    if not os.environ.get("DJANGO_SECRET_KEY", "").strip():
        # Generated on first use into an owner-only file, and kept there (see creditmon/settings.py).
        env["DJANGO_SECRET_KEY_FILE"] = os.environ.get("DJANGO_SECRET_KEY_FILE") or str(
            Path(settings.BASE_DIR) / ".secret_key"
        )
    # Plain HTTP on this machine: secure-only cookies would never come back. Behind an HTTPS proxy, say so.
    if not os.environ.get("DJANGO_SECURE_COOKIES", "").strip():
        env["DJANGO_SECURE_COOKIES"] = os.environ.get("DJANGO_BEHIND_PROXY", "").strip() or "false"
    return env


def demo_settings(simulator_url: str, demo_db: str, notify_url: str = "") -> dict[str, str]:
    """The environment of the demo's processes, and of the checkcredits line it prints."""
    return {
        "CREDITMON_DEMO": "true",
        "OPENROUTER_BASE_URL": simulator_url,
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
        # Set (empty, or the simulator's inbox) so .env cannot fill them: the demo never watches real keys,
        # notifies real channels, pings a real heartbeat or joins a real worker cluster.
        "OPENROUTER_API_KEYS": "",
        "NOTIFY_URLS": notify_url,
        "AGENT_WEBHOOK_URL": demo.webhook_url(notify_url) if notify_url else "",
        "AGENT_WEBHOOK_SECRET": demo.DEMO_WEBHOOK_SECRET if notify_url else "",
        "HEARTBEAT_URL": "",
        "REDIS_URL": "",
        # Its own database, so the demo never mixes invented history with real checks.
        "DATABASE_URL": f"sqlite:///{demo_db}",
    }


def demo_command(simulator_url: str, demo_db: str) -> str:
    words = [f"{name}={value}" for name, value in demo_settings(simulator_url, demo_db).items()]
    return " ".join(words) + " .venv/bin/python manage.py checkcredits"
