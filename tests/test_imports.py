"""Imports run one way: entry points -> orchestration -> rooms -> models and pure maths.

No module imports one above it, and no import between monitoring modules hides inside a function
(a cycle dodged, not removed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "monitoring"

# Lower numbers are lower rooms; a module may import only modules of a lower rank.
# Modules not listed are entry points (views, commands, tasks, admin...): nothing below imports them.
RANKS = {
    "forecast": 0,
    "modelcosts": 0,  # the advisor's maths: plain values in and out
    "logredact": 0,
    "bulk": -1,  # many rows saved at once: Django only, below the rollups
    "channelmask": 0.5,  # Apprise's privacy form of a URL, in a child process where Apprise is not loaded
    "simulator": 0,  # the test double: a standalone HTTP server
    "models": 1,
    "rollups": 0,  # below the models: their rows, the credit log looked up through the app registry
    "budgets": 0,  # below the models like the rollups: budget layer readings, registered from models
    "openrouter": 2,
    "outlook": 2,
    "spike_factors": 0,  # pure maths: which factor of spend moved
    "agent_webhook": 2,  # posts task documents; knows the rows, not what they say
    "schedule": 2,
    "roles": 1,  # who may act: settings and Django's permissions only
    "audit": 2,  # the audit trail's writer, beside the models
    "broker": 2,  # the task broker as the pages see it (django-q2, Redis)
    "memo": 2,  # figures kept per activity sync: the models' versions and Django's cache
    "checks": 2,
    "retention": 3,
    "status": 3,
    "catalogue": 3,  # the model catalogue, beside the client
    "advisor": 4,  # the advice: catalogue, activity and the status's forecast
    "report": 4,
    "drivers": 4,  # reads the key's readings the way the status does
    "plugin": 4,  # the monitoring-plugin output, beside the seed's report
    "account": 4,
    "notify": 5,
    "agent_tasks": 5,  # beside notify: the alert lifecycle opens and closes them
    "alerts": 6,
    "monitor": 7,
    "dashboard": 8,  # what the pages show, read from status and the rollups
    "demo": 10.5,  # drives the scheduled job itself (tasks, an entry point) over a simulated month
    "context_processors": 11,  # every page's demo banner names the demo login
    "watch": 8,
    "backtest": 8,
    "management": 8,  # the commands' shared base (management/base.py)
    "api": 9,  # its range parsing is shared with the CSV exports
    "mcp_http": 9,  # /mcp's bearer gate, without the SDK (asgi loads the SDK only when /mcp is on)
    "urls": 11,
    "management.commands": 12,  # thin shells over the job, the exports and the checks
}
ENTRY = 10


def modules() -> list[Path]:
    return [p for p in APP.rglob("*.py") if "migrations" not in p.parts]


def name_of(path: Path) -> str:
    parts = path.relative_to(APP).with_suffix("").parts
    if parts[:2] == ("management", "commands"):
        return "management.commands"  # each command is an entry point
    return parts[0] if parts[0] != "__init__" else ""


def imported(node: ast.AST, path: Path) -> list[str]:
    """The monitoring modules an import statement names."""
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("monitoring.")]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 0:
        if node.module == "monitoring":
            return [a.name for a in node.names]
        if node.module and node.module.startswith("monitoring."):
            return [node.module.split(".")[1]]
        return []
    package = path.relative_to(APP).parts[:-1]
    base = list(package[: len(package) - (node.level - 1)]) if node.level > 1 else list(package)
    if node.module:
        return [(base + node.module.split("."))[0]] if base else [node.module.split(".")[0]]
    return [a.name for a in node.names] if not base else [base[0]]


def every_import(path: Path):
    tree = ast.parse(path.read_text())
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        for target in imported(node, path):
            yield node, target, id(node) in top_level


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(APP)))
def test_no_import_between_monitoring_modules_hides_in_a_function(path):
    hidden = [f"line {node.lineno}: {target}" for node, target, top in every_import(path) if not top]
    assert hidden == [], f"{path.name} imports inside a function: move the rule down instead"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(APP)))
def test_imports_only_run_downwards(path):
    own = RANKS.get(name_of(path), ENTRY)
    upward = [
        f"line {node.lineno}: {target}"
        for node, target, _ in every_import(path)
        if target and target != name_of(path) and RANKS.get(target, ENTRY) >= own
    ]
    assert upward == [], f"{path.name} (rank {own}) imports a room at or above its own"


def test_no_module_imports_another_modules_private_helper():
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("monitoring")):
                found += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []
