"""Hostile OpenRouter answers, for real: a header drip, a redirect, implausible figures, hostile strings,
an upstream error echoing the key. Each is a failed check with its reason (or a clean reading), never a
hang, a traceback, a lost row, a forged log line or a chat mention. Runs on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from monitoring import monitor, openrouter
from monitoring.models import Activity, Alert, ApiKey, CreditLog, Level
from monitoring.monitor import LISTING_LABEL
from monitoring.openrouter import Client, OpenRouterError, key_hash
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

pytestmark = pytest.mark.django_db

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
HEX_KEY = "sk-or-v1-" + "3f9a0c17" * 8  # shaped like a real key: 64 hex digits after the prefix


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("checkcredits", *args, stdout=out, stderr=err)
    return exited.value.code, out.getvalue(), err.getvalue()


class LogTail:
    """What the configured log file gets from now on (the real LOGGING handlers and filters)."""

    def __init__(self):
        self.path = Path(django_settings.LOG_DIR) / "creditmon.log"
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        for handler in logging.getLogger("monitoring").handlers:
            handler.flush()
        with self.path.open("rb") as f:
            f.seek(self.start)
            return f.read().decode("utf-8", "replace")


def stored_strings() -> list[str]:
    """Every string the checks stored: credit log, keys, activity, alerts."""
    rows = [
        *CreditLog.objects.values(),
        *ApiKey.objects.values(),
        *Activity.objects.values(),
        *Alert.objects.values(),
    ]
    return [value for row in rows for value in row.values() if isinstance(value, str)]


def stored_text() -> str:
    return "\n".join(stored_strings())


# --- the schema knows the columns --------------------------------------------------------------


def test_the_cleaning_lengths_are_the_columns_lengths():
    length = {
        (model.__name__, f.name): f.max_length
        for model in (ApiKey, CreditLog, Activity)
        for f in model._meta.fields
        if f.max_length
    }
    assert length["ApiKey", "label"] == length["CreditLog", "label"] == openrouter.LABEL_LENGTH
    assert length["ApiKey", "name"] == openrouter.NAME_LENGTH
    assert length["ApiKey", "limit_reset"] == length["CreditLog", "limit_reset"] == openrouter.LIMIT_RESET_LENGTH
    assert length["Activity", "model"] == length["Activity", "model_permaslug"] == openrouter.MODEL_LENGTH
    assert length["Activity", "endpoint_id"] == openrouter.ENDPOINT_LENGTH
    assert length["Activity", "provider_name"] == openrouter.PROVIDER_LENGTH
    assert length["ApiKey", "hash"] == 64


# --- time: one deadline for the whole exchange -------------------------------------------------


def test_a_header_drip_ends_checkcredits_within_40_s_exit_3_with_a_failed_row(sim, settings, monkeypatch):
    # The issue's server: the status line, then one header byte every 2 s, for ever.
    monkeypatch.setattr(sim, "drip_interval", 2.0)
    settings.OPENROUTER_TIMEOUT = 5
    settings.OPENROUTER_MAX_RETRIES = 2
    sim.set_failure("header-drip")
    started = time.monotonic()
    code, out, err = run()
    elapsed = time.monotonic() - started
    assert elapsed < 40, f"checkcredits took {elapsed:.1f} s"
    assert code == 3
    log = CreditLog.objects.get()
    assert log.ok is False and "did not answer within 5 s" in log.error
    assert "did not answer within 5 s" in err and "Traceback" not in out + err
    assert any(r["path"] == "/api/v1/key" for r in sim.requests)  # it really talked to the dripping server


def test_a_call_with_its_retries_ends_within_timeout_times_attempts(sim):
    sim.set_failure("http503")  # retryable, Retry-After: 1 each time
    client = Client(PROD_KEY, base_url=sim.url, timeout=1.0, max_retries=5)
    started = time.monotonic()
    with pytest.raises(OpenRouterError) as raised:
        client.get_key()
    assert time.monotonic() - started < client.total_timeout == 6.0
    assert raised.value.status == 503
    assert 2 <= len(sim.requests) < 6  # retried, but never past the call's bound


# --- redirects ----------------------------------------------------------------------------------


def test_a_redirect_is_a_failed_check_naming_the_host_and_is_never_followed(sim, webhook_receiver, monkeypatch):
    code, _, _ = run()
    assert code == 0
    key = ApiKey.objects.get()
    label = key.label
    # The other host would learn the key from the query if anyone went there.
    monkeypatch.setattr(sim, "redirect_to", f"http://{webhook_receiver.url}/steal/path?token={{token}}")
    sim.set_failure("redirect")
    code, out, err = run()
    assert code == 3
    failed = CreditLog.objects.filter(ok=False).get()
    assert failed.http_status == 302
    assert f"redirect to http://{webhook_receiver.url}," in failed.error and "not followed" in failed.error
    assert "steal" not in failed.error + err and PROD_KEY not in failed.error + err + out
    assert webhook_receiver.received == []  # never followed
    assert CreditLog.objects.filter(ok=True).count() == 1  # no reading from the foreign answer
    key.refresh_from_db()
    assert key.label == label  # not renamed


# --- implausible numbers -----------------------------------------------------------------------


def test_the_issues_implausible_answer_is_a_failed_check_no_reading_no_critical_alert(sim, settings, webhook_receiver):
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    sim.set_failure("implausible")  # usage -500, limit_remaining -1e300
    code, out, err = run()
    assert code == 3
    (line,) = err.strip().splitlines()
    assert "implausible" in line and "`usage` is -500 (negative)" in line and len(line) < 300
    monitor.run_monitor()  # the scheduled path: evaluates alerts and notifies
    assert not CreditLog.objects.filter(ok=True).exists()
    assert CreditLog.objects.filter(ok=False).count() == 2
    assert all("implausible" in log.error for log in CreditLog.objects.all())
    assert not Alert.objects.filter(level=Level.CRITICAL).exists()
    assert not [m for m in webhook_receiver.received if "exhausted" in json.dumps(m)]


@pytest.mark.parametrize(
    "figures, reason",
    [
        ({"limit_remaining": -1e300}, "`limit_remaining` is -1e+300 (below the overspend tolerance of -10)"),
        ({"limit_remaining": 150.0}, "`limit_remaining` is 150 (above the limit of 100)"),
        ({"usage": 5e12}, "`usage` is 5e+12 (beyond $1,000,000,000)"),
    ],
)
def test_implausible_figures_are_rejected_with_the_reason(sim, monkeypatch, figures, reason):
    monkeypatch.setattr(sim, "implausible", figures)
    sim.set_failure("implausible")
    code, _, err = run()
    assert code == 3
    log = CreditLog.objects.get()
    assert log.ok is False and reason in log.error and reason in err


def test_a_small_overspend_past_the_cap_is_a_reading(sim, monkeypatch):
    monkeypatch.setattr(sim, "implausible", {"limit_remaining": -0.01})  # a request finished after the cap
    sim.set_failure("implausible")
    code, out, _ = run()
    log = CreditLog.objects.get()
    assert log.ok is True and log.limit_remaining == -0.01
    assert code == 2 and "Credits exhausted: -$0.01 remaining" in out


# --- hostile strings: the same on SQLite and PostgreSQL -----------------------------------------


def test_hostile_strings_are_stored_clean_and_cut_to_their_columns(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_failure("hostile-strings")
    code, out, err = run()
    assert code in (0, 1, 2), err  # a reading, whatever its level: not 1 from a traceback, not 3
    assert "Traceback" not in out + err
    monitor.run_monitor()  # also /activity, with hostile model, provider and endpoint names
    readings = CreditLog.objects.filter(ok=True)
    assert readings.count() >= 2 and not CreditLog.objects.filter(ok=False).exists()
    assert Activity.objects.exists()
    for log in readings:
        assert "FORGED line" in log.label and len(log.label) <= 200
        assert log.limit_reset == "monthly" + "x" * 13
        assert "\\u0000" not in log.raw_response and not CONTROL.search(log.raw_response)
    for row in Activity.objects.all():
        assert "FORGED line" in row.model and len(row.model) <= 200 and len(row.endpoint_id) <= 100
    assert ApiKey.objects.filter(name__contains="FORGED line").exists()
    assert not [text for text in stored_strings() if CONTROL.search(text)]
    # Invisible format characters (bidi overrides, zero-width) are gone; the visible text around them stays.
    assert not [text for text in stored_strings() if any(unicodedata.category(ch) == "Cf" for ch in text)]
    assert all("gpj.exe" in log.label for log in readings)
    assert not [log for log in readings if re.search(r"\\u(202e|2066|200b|feff)", log.raw_response, re.IGNORECASE)]


def test_a_listed_hash_that_is_not_64_hex_digits_rejects_the_listing_with_a_reason(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_failure("bad-hash")
    code, _, err = run()
    assert code == 3 and "Traceback" not in err
    listing = CreditLog.objects.get(label=LISTING_LABEL)
    assert listing.ok is False and "a listed key's `hash` is not 64 hex digits" in listing.error
    assert CreditLog.objects.get(key__hash=key_hash(PROD_KEY)).ok is True  # the direct check still counts
    assert not ApiKey.objects.filter(hash__startswith="zzz").exists()


# --- injection-safe outputs ---------------------------------------------------------------------


def test_a_newline_in_a_logged_value_cannot_forge_a_log_line():
    tail = LogTail()
    forged = "2026-01-01 00:00:00,000 ERROR monitoring: FORGED"
    logging.getLogger("monitoring").warning("Key %s checked", f"evil\n{forged}\r\x1b[2K")
    text = tail.text()
    (line,) = [line for line in text.splitlines() if "FORGED" in line]
    assert not line.startswith("2026-01-01") and "Key evil\\n2026-01-01" in line and "\\r\\x1b[2K checked" in line


def test_hostile_names_from_openrouter_stay_on_one_log_line(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_failure("hostile-strings")
    tail = LogTail()
    run()
    lines = tail.text().splitlines()
    assert any("FORGED line" in line for line in lines)
    assert not [line for line in lines if line.startswith("2026-01-01")]


def test_an_upstream_error_echoing_the_keys_hex_is_redacted_everywhere(sim, settings):
    sim.add_key(HEX_KEY, "Hex Key", limit=50.0)
    settings.OPENROUTER_API_KEY = HEX_KEY
    hex_digits = HEX_KEY.removeprefix("sk-or-v1-")
    sim.set_failure("echo-key")  # 500: "Internal error for key <64 hex>: ..."
    tail = LogTail()
    code, out, err = run()
    assert code == 3
    log = CreditLog.objects.get()
    assert "(500)" in log.error and "[redacted" in log.error
    for where in (log.error, out, err, stored_text(), tail.text()):
        assert hex_digits not in where.lower()


def test_mentions_in_a_key_label_reach_chat_neutralised(sim, settings, webhook_receiver):
    settings.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    sim.set_scenario("exhausted")  # a CRITICAL balance alert at once, titled with the key's label
    sim.set_failure("hostile-strings")
    monitor.run_monitor()
    sent = [m["body"] for m in webhook_receiver.received]
    about_the_key = [m for m in sent if "FORGED line" in m["title"]]
    assert about_the_key, f"no notification named the key: {sent}"
    for message in sent:
        text = message["title"] + "\n" + message["message"]
        for mention in ("@everyone", "@here", "<@123>", "<!channel>"):
            assert mention not in text
        assert not CONTROL.search(text.replace("\n", " "))
    title = about_the_key[0]["title"]
    assert "@\u200beveryone" in title and "<\u200b@123>" in title and "<\u200b!channel>" in title


def test_a_proxy_from_the_environment_is_used_and_no_proxy_is_honoured(sim, webhook_receiver, monkeypatch):
    """The environment is read once per client and host (not on every request), and still decides: HTTP_PROXY
    carries the call, NO_PROXY exempts the host."""
    monkeypatch.setenv("HTTP_PROXY", f"http://{webhook_receiver.url}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # The receiver answers every proxied call itself ("{}", not OpenRouter's shape): the call went there.
    proxied = Client(PROD_KEY, base_url=sim.url, max_retries=0)
    for _ in range(2):  # the second call is answered from the session's reading of the environment
        with pytest.raises(OpenRouterError):
            proxied.get_key()
    through = [r["path"] for r in webhook_receiver.received]
    assert through == [f"{sim.url}/key"] * 2, through  # a proxy is asked for the absolute URL

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = Client(PROD_KEY, base_url=sim.url, max_retries=0)
    assert direct.get_key().usage is not None
    assert len(webhook_receiver.received) == 2
