"""`checkcredits --plugin` against the simulator, read back with the monitoring-plugin grammar
(https://www.monitoring-plugins.org/doc/guidelines.html#AEN201) and compared with `--json` on the same data."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitoring import plugin
from monitoring.models import ApiKey, CreditLog
from monitoring.openrouter import key_hash
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

pytestmark = pytest.mark.django_db

# --- the grammar, written from the guidelines, not from our code -------------------------------------

LABEL = r"(?:'(?P<quoted>[^'=]+)'|(?P<bare>[^'=\s]+))"
VALUE = r"-?[0-9]+(?:\.[0-9]+)?"
UOM = r"(?:s|ms|us|%|B|KB|MB|TB|c)?"
RANGE = rf"@?(?:~|{VALUE})?:?(?:{VALUE})?"
PERF = re.compile(
    rf"{LABEL}=(?P<value>{VALUE}|U)(?P<uom>{UOM})"
    rf"(?:;(?P<warn>{RANGE})?(?:;(?P<crit>{RANGE})?(?:;(?P<min>{VALUE})?(?:;(?P<max>{VALUE})?)?)?)?)?"
)


@dataclass
class Range:
    """A threshold range: alert when the value is outside [start, end] (inside, with a leading @)."""

    start: float
    end: float
    inside: bool

    @classmethod
    def parse(cls, text: str) -> Range:
        inside = text.startswith("@")
        text = text.removeprefix("@")
        if ":" not in text:
            return cls(0.0, float(text), inside)
        low, high = text.split(":", 1)
        start = -math.inf if low == "~" else float(low or 0)
        return cls(start, float(high) if high else math.inf, inside)

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within


def parse_plugin(output: str) -> tuple[str, dict[str, dict]]:
    """(status line, {label: {value, warn, crit, min, max}}); fails on anything the grammar does not allow."""
    lines = output.splitlines()
    assert len(lines) == 1, output
    text, bar, data = lines[0].partition(" | ")
    assert bar and "|" not in text and "|" not in data, output
    found: dict[str, dict] = {}
    position = 0
    while position < len(data):
        match = PERF.match(data, position)
        assert match, f"not plugin perfdata at {data[position:]!r}"
        label = match["quoted"] or match["bare"]
        assert label not in found, f"label {label!r} twice"
        found[label] = {
            "value": None if match["value"] == "U" else float(match["value"]),
            "warn": Range.parse(match["warn"]) if match["warn"] else None,
            "crit": Range.parse(match["crit"]) if match["crit"] else None,
            "min": float(match["min"]) if match["min"] else None,
            "max": float(match["max"]) if match["max"] else None,
        }
        position = match.end()
        if position < len(data):
            assert data[position] == " ", f"perfdata items are separated by one space: {data[position:]!r}"
            position += 1
    return text, found


def test_the_parser_reads_the_guidelines_examples():
    _, found = parse_plugin("X OK - y | 'a b'=1.5s;10:;@10:20;0;100 c=2;~:5;3 d=U")
    assert found["a b"]["warn"].alerts(9) and not found["a b"]["warn"].alerts(11)
    assert found["a b"]["crit"].alerts(15) and not found["a b"]["crit"].alerts(21)
    assert found["c"]["warn"].alerts(6) and not found["c"]["warn"].alerts(-100)
    assert found["c"]["crit"].alerts(4) and found["c"]["crit"].alerts(-1)
    with pytest.raises(AssertionError):
        parse_plugin("X OK - y | 'a'=1,5")  # a decimal comma is not the C locale


# --- the command ------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("checkcredits", *args, stdout=out, stderr=StringIO())
    return exited.value.code, out.getvalue()


def seed_history(days: int = 8, per_check: float = 0.80, usage_now: float = 54.77):
    key = ApiKey.objects.create(hash=key_hash(PROD_KEY), name="Production Key", is_primary=True)
    now = timezone.now()
    CreditLog.objects.bulk_create(
        CreditLog(key=key, timestamp=now - timedelta(hours=6 * k), usage=usage_now - per_check * k, remaining=1.0)
        for k in range(1, days * 4 + 1)
    )


def test_the_plugin_output_is_one_status_line_and_perfdata_with_the_json_figures(sim, settings):
    settings.FORECAST_WARNING_DAYS = 20  # 14.1 days left: a forecast warning
    seed_history()
    code, out = run("--plugin")
    text, perf = parse_plugin(out)
    assert code == 1
    assert text.startswith("CREDITS WARNING - Production Key $45.23 left, 14.1 days; Runs out in 14.1 days")
    assert perf["remaining"]["value"] == 45.23 and perf["remaining"]["max"] == 100 and perf["remaining"]["min"] == 0
    assert perf["remaining"]["warn"].alerts(9.99) and not perf["remaining"]["warn"].alerts(10)  # 10: below 10
    assert perf["remaining"]["crit"].alerts(-0.01) and not perf["remaining"]["crit"].alerts(0.01)
    assert perf["days_left"]["warn"].alerts(perf["days_left"]["value"])  # the level the exit code says
    assert not perf["days_left"]["crit"].alerts(perf["days_left"]["value"])

    _, again = run("--json")
    figures = json.loads(again)
    main = figures["keys"][0]
    assert perf["remaining"]["value"] == main["remaining"]
    assert perf["days_left"]["value"] == main["days_left"]
    assert perf["burn_rate"]["value"] == round(main["burn_rate"], 2)
    assert code == figures["exit_code"]


def test_every_key_and_the_account_have_their_labels(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_scenario("many-keys")
    code, out = run("--plugin", "--threshold=12.5")
    _, perf = parse_plugin(out)
    figures = json.loads(run("--json", "--threshold=12.5")[1])
    assert code == figures["exit_code"]
    assert perf["account_balance"]["value"] == figures["account"]["balance"] == 69.5
    assert perf["account_balance"]["warn"] == perf["remaining"]["warn"] == perf["key-042 remaining"]["warn"]
    assert perf["account_balance"]["warn"].start == 12.5
    named = {k["key"]: k for k in figures["keys"]}
    for name, key in named.items():
        prefix = "" if key["key"] == figures["keys"][0]["key"] and key["source"] != "listed" else f"{name} "
        label = f"{prefix}remaining"
        if key["remaining"] is None:
            assert label not in perf  # unknown: left out, never 0
        elif label in perf:
            assert perf[label]["value"] == key["remaining"]
    assert sum(1 for label in perf if label.endswith("remaining")) == sum(
        1 for k in figures["keys"] if k["remaining"] is not None
    )


def test_a_rejected_key_is_critical_with_its_reason_and_no_figures(sim):
    sim.set_failure("http401")
    code, out = run("--plugin")
    assert code == 2
    assert out.startswith("CREDITS CRITICAL - ") and "OpenRouter API error (401)" in out
    assert out.count("\n") == 1 and "|" not in out  # nothing known: no perfdata at all, not zeros


def test_unknown_figures_are_left_out_not_zero(sim):
    code, out = run("--plugin")  # the first check: no history, so no burn rate and no days left
    _, perf = parse_plugin(out)
    assert "remaining" in perf
    assert "burn_rate" not in perf and "days_left" not in perf
    assert code == json.loads(run("--json")[1])["exit_code"]


def test_plugin_and_json_are_one_choice():
    out, err = StringIO(), StringIO()
    with pytest.raises(Exception) as refused:
        call_command("checkcredits", "--plugin", "--json", stdout=out, stderr=err)
    assert getattr(refused.value, "returncode", None) == 3
    assert "not allowed with argument" in str(refused.value)


def test_hostile_names_cannot_break_the_grammar(sim):
    sim.set_failure("hostile-strings")  # names with a NUL, new lines, a terminal escape and 300 characters
    code, out = run("--plugin")
    text, perf = parse_plugin(out)  # one line, one " | ", every label within the grammar
    assert text.startswith("CREDITS ") and "FORGED line" in text
    assert all(ch.isprintable() for ch in out.rstrip("\n"))
    assert code == json.loads(run("--json")[1])["exit_code"]
    assert plugin.label_text("it's = a | key\nwith 'quotes'\x1b[0m") == "it_s _ a _ key with _quotes_[0m"
