"""The process supervisor of `make run` and the systemd unit: the Procfile's release step, then its web and worker.

It imports nothing from Django (a whole Django process that only waits cost 46 MB), only the standard library and,
in demo mode, the simulated OpenRouter (itself standard library only). `python -m creditmon.supervisor` runs
the Procfile as it is; `manage.py runapp` prepares the demo and hands over a plan in CREDITMON_SUPERVISE.

Stopping (SIGTERM, SIGINT, SIGHUP, or any child ending): SIGTERM to each child's main process (gunicorn and
django-q2 stop gracefully, a run in progress records why it stopped and releases its lease), then after
STOP_GRACE seconds SIGTERM to each child's whole process group, then SIGKILL to whatever is left at STOP_KILL:
everything is gone within 5 seconds, however django-q2's cluster is doing (it can hang after a reincarnation).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitoring.simulator import Simulator  # standard library only, like this module

ROOT = Path(__file__).resolve().parent.parent
PLAN_VARIABLE = "CREDITMON_SUPERVISE"
STOP_GRACE = 2.0  # seconds for the children's own graceful stop
STOP_KILL = 4.0  # then SIGKILL, so that the whole tree is gone within 5 s
MIGRATE_FAILED = "nothing started: the database could not be migrated"


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """The Procfile's entries by name (`name: command`), comments and blank lines skipped."""
    entries = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def default_plan() -> dict:
    """No plan given: the Procfile as a platform would run it (release first, then web and worker)."""
    entries = procfile()
    return {
        "prepare": [{"shell": entries["release"], "what": "the release step"}] if "release" in entries else [],
        "processes": {name: entries[name] for name in ("web", "worker") if name in entries},
        "banner": "",
        "simulator": None,
    }


class Supervisor:
    def __init__(self, plan: dict, env: dict[str, str]):
        self.plan, self.env = plan, env
        self.children: dict[str, subprocess.Popen] = {}
        self.current: subprocess.Popen | None = None  # the prepare step running now
        self.stopping = False
        self.simulator = None

    # --- signals ------------------------------------------------------------------------------

    def request_stop(self, signum, frame) -> None:
        self.stopping = True
        if self.current is not None and self.current.poll() is None:
            self._signal_group(self.current, signal.SIGTERM)

    def install_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.request_stop)

    # --- running ------------------------------------------------------------------------------

    def spawn(self, command: str, replace_shell: bool = True) -> subprocess.Popen:
        # Its own process group: a Ctrl-C reaches this supervisor only, which stops the children in order.
        # `exec`: the command itself is the child (no shell between), so its signals reach it.
        script = f"exec {command}" if replace_shell else command
        return subprocess.Popen(["/bin/sh", "-c", script], cwd=ROOT, env=self.env, process_group=0)

    def prepare(self) -> int:
        for step in self.plan.get("prepare", []):
            if self.stopping:
                return 0
            command = step["shell"] if "shell" in step else shlex.join(step["argv"])
            self.current = self.spawn(command, replace_shell="shell" not in step)
            code = self.current.wait()
            self.current = None
            if code and not step.get("optional") and not self.stopping:
                what = MIGRATE_FAILED if step["what"] == "migrate" else f"nothing started: {step['what']} failed"
                sys.stderr.write(f"creditmon: {what} (exit {code})\n")
                return code
        return 0

    def run(self) -> int:
        self.install_handlers()
        try:
            self.start_simulator()
            code = self.prepare()
            if code or self.stopping:
                return code
            for name, command in self.plan["processes"].items():
                self.children[name] = self.spawn(command)
            if self.plan.get("banner"):
                sys.stdout.write(self.plan["banner"] + "\n")
                sys.stdout.flush()
            while not self.stopping:
                ended = [name for name, child in self.children.items() if child.poll() is not None]
                if ended:
                    sys.stderr.write(f"creditmon: {', '.join(ended)} stopped: stopping the rest\n")
                    code = 1
                    break
                time.sleep(0.2)
            return code
        finally:
            self.stop()

    def start_simulator(self) -> None:
        spec = self.plan.get("simulator")
        if not spec:
            return
        try:
            self.simulator = Simulator(spec.get("scenario", "steady"), port=spec["port"]).start()
        except OSError:  # taken since runapp looked: any free port, and the settings and banner say which
            self.simulator = Simulator(spec.get("scenario", "steady")).start()
            planned = f"://127.0.0.1:{spec['port']}/"  # its API (http://) and its inbox (NOTIFY_URLS, json://)
            actual = f"://127.0.0.1:{self.simulator.port}/"
            self.env = {name: value.replace(planned, actual) for name, value in self.env.items()}
            self.plan["banner"] = self.plan.get("banner", "").replace(planned, actual)
        for token, usage, limit in spec.get("keys", []):
            self.simulator.set_key(token, usage=usage, limit=limit)
        if spec.get("state"):
            self.simulator.load(spec["state"])  # where the demo's month ends (monitoring.demo.Month.state)

    # --- stopping -----------------------------------------------------------------------------

    @staticmethod
    def _signal_group(child: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _group_alive(child: subprocess.Popen) -> bool:
        try:
            os.killpg(child.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self) -> None:
        children = list(self.children.values())
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # the main process first: its own graceful stop
        started = time.monotonic()
        escalated = False
        while any(child.poll() is None or self._group_alive(child) for child in children):
            waited = time.monotonic() - started
            if waited >= STOP_KILL:
                for child in children:
                    self._signal_group(child, signal.SIGKILL)
                for child in children:
                    child.wait()
                break
            if waited >= STOP_GRACE and not escalated:
                escalated = True
                for child in children:
                    self._signal_group(child, signal.SIGTERM)  # workers left behind, a cluster that hangs
            time.sleep(0.05)
        if self.simulator is not None:
            self.simulator.stop()


def main() -> int:
    env = dict(os.environ)
    text = env.pop(PLAN_VARIABLE, "")
    plan = json.loads(text) if text else default_plan()
    # The Procfile's commands (gunicorn, python) are this virtualenv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return Supervisor(plan, env).run()


if __name__ == "__main__":
    sys.exit(main())
