"""`manage.py checkcredits` over real HTTP against the simulator: report, exit codes, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from monitoring.models import ApiKey, CreditLog
from monitoring.openrouter import Client, OpenRouterError, key_hash
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("checkcredits", *args, stdout=out, stderr=err)
    return exited.value.code, out.getvalue(), err.getvalue()


def seed_history(days: int = 8, per_check: float = 0.80, usage_now: float = 54.77, name: str = "Production Key"):
    """Checks every 6 hours before now, usage rising `per_check` each time, ending below `usage_now`."""
    key = ApiKey.objects.create(hash=key_hash(PROD_KEY), name=name, is_primary=True)
    now = timezone.now()
    rows = [
        CreditLog(key=key, timestamp=now - timedelta(hours=6 * k), usage=usage_now - per_check * k, remaining=1.0)
        for k in range(1, days * 4 + 1)
    ]
    CreditLog.objects.bulk_create(rows)
    return key


def test_it_prints_the_seed_report_with_the_seed_figures(sim):
    seed_history()
    code, out, err = run()
    assert code == 0, out + err
    expected = [
        "Checking OpenRouter credits...",
        "",
        "API Key: Production Key",
        "Balance: $45.23 remaining",
        "Usage: $54.77 / $100.00",
        "",
        "Burn Rate: $3.20/day (7-day average)",
        "Days Left: 14.1 days at current rate",
        "",
        "✓ Credits OK",
    ]
    assert out.splitlines() == expected


def test_a_top_up_in_the_middle_does_not_change_the_burn_rate(sim):
    key = seed_history()
    # The limit was raised (a top-up) halfway: remaining jumps, cumulative usage does not.
    middle = timezone.now() - timedelta(days=4)
    CreditLog.objects.filter(key=key, timestamp__lt=middle).update(credit_limit=60.0)
    CreditLog.objects.filter(key=key, timestamp__gte=middle).update(credit_limit=100.0)
    code, out, _ = run()
    assert "Burn Rate: $3.20/day (7-day average)" in out


def test_a_key_reset_does_not_change_the_burn_rate(sim):
    key = seed_history()
    # The key's usage counter restarted from zero four days ago.
    reset_at = timezone.now() - timedelta(days=4, hours=3)
    for row in CreditLog.objects.filter(key=key, timestamp__gte=reset_at).order_by("timestamp"):
        steps = round((row.timestamp - reset_at).total_seconds() / (6 * 3600) + 0.5)
        row.usage = 0.80 * steps
        row.save()
    latest = CreditLog.objects.filter(key=key).order_by("-timestamp").first()
    sim.set_key(PROD_KEY, usage=latest.usage + 0.80, limit=100, limit_remaining=45.23)
    code, out, _ = run()
    assert "Burn Rate: $3.20/day (7-day average)" in out


def test_one_entry_says_why_the_burn_rate_is_unknown(sim):
    code, out, _ = run()
    assert code == 0
    assert "Burn Rate: unknown (need readings over at least 1 hour" in out
    assert "Days Left: unknown (burn rate unknown)" in out


def test_verbose_adds_the_limit_window_its_reset_usage_windows_and_byok(sim):
    sim.set_scenario("monthly")
    code, out, _ = run("--verbose")
    assert "Key Limit Left: $37.50 (window: monthly)" in out
    first_of_next_month = (timezone.now().replace(day=1) + timedelta(days=32)).replace(day=1)
    assert f"Key Limit Resets: {first_of_next_month:%Y-%m}-01 00:00 UTC" in out
    assert "Usage This Month: $12.50" in out
    assert "Usage Today:" in out and "Usage This Week:" in out
    assert "Rate Limit:" not in out  # deprecated by OpenRouter: always -1


def test_a_monthly_cap_shows_this_months_usage_not_all_time(sim):
    sim.set_scenario("monthly")
    _, out, _ = run()
    snapshot = json.loads(CreditLog.objects.get().raw_response)["data"]
    assert snapshot["usage"] > 50  # all time, beyond the cap
    assert "Usage: $12.50 / $50.00 this month" in out
    assert f"${snapshot['usage']:,.2f} / $50.00" not in out


def test_json_gives_the_same_short_key_hash_as_the_api_and_the_csv(sim):
    _, out, _ = run("--json")
    assert json.loads(out)["keys"][0]["key_hash"] == key_hash(PROD_KEY)[:12]


def test_logs_go_to_the_log_file_unless_asked_for_and_errors_are_printed_once(sim):
    import logging

    console = next(h for h in logging.getLogger("monitoring").handlers if h.get_name() == "console")
    seen = StringIO()
    previous = console.setStream(seen)  # what the terminal (or cron's mail) would get from the logger
    try:
        sim.set_scenario("http500")
        code, out, err = run()
        assert code == 3 and seen.getvalue() == ""
        assert err.count("OpenRouter API error (500)") == 1
        assert "OpenRouter API error (500)" in (Path(settings.LOG_DIR) / "creditmon.log").read_text()
        run("--verbosity", "2")
        assert "ERROR monitoring: OpenRouter check failed" in seen.getvalue()
    finally:
        console.setStream(previous)


def test_json_output_for_scripts(sim):
    seed_history()
    code, out, _ = run("--json")
    payload = json.loads(out)
    assert code == 0 and payload["status"] == "OK" and payload["exit_code"] == 0
    assert payload["remaining"] == 45.23
    assert payload["burn_rate_per_day"] == pytest.approx(3.2)
    assert payload["days_left"] == 14.1
    assert payload["keys"][0]["key"] == "Production Key"
    assert PROD_KEY not in out


def test_below_the_threshold_is_a_warning_with_exit_1(sim):
    sim.set_scenario("low")
    code, out, _ = run()
    assert code == 1
    assert "Balance: $4.50 remaining" in out
    assert "⚠ WARNING: Credits low: $4.50 remaining (threshold $10.00)" in out


def test_the_threshold_option_overrides_the_setting(sim):
    code, out, _ = run("--threshold=50")
    assert code == 1
    assert "(threshold $50.00)" in out


def test_exhausted_is_critical_with_exit_2(sim):
    sim.set_scenario("exhausted")
    code, out, _ = run()
    assert code == 2
    assert "✗ CRITICAL: Credits exhausted: $0.00 remaining" in out


def test_at_the_minimum_operating_balance_is_critical(sim, settings):
    settings.OPENROUTER_MIN_BALANCE = 5.0
    sim.set_scenario("low")
    code, out, _ = run()
    assert code == 2
    assert "minimum $5.00" in out


def test_a_capped_key_with_a_reset_window_uses_limit_remaining(sim):
    sim.set_scenario("monthly")  # limit 50, all-time usage 180, this month 12.50
    code, out, _ = run("--json")
    key = json.loads(out)["keys"][0]
    assert key["remaining"] == 37.5  # never limit - usage (= -130)
    assert key["limit_reset"] == "monthly"


def test_an_uncapped_key_without_management_key_has_an_unknown_balance(sim):
    sim.set_scenario("uncapped")
    code, out, _ = run()
    assert code == 3
    assert "Balance: unknown (set OPENROUTER_MANAGEMENT_KEY to read the account balance)" in out
    assert "Usage: $54.77 (no limit)" in out
    log = CreditLog.objects.get()
    assert log.ok and log.remaining is None and log.account_balance is None


def test_an_uncapped_key_with_a_management_key_uses_the_account_balance(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_key(PROD_KEY, limit=None, limit_remaining=None, limit_reset=None)
    code, out, _ = run()
    assert code == 0
    assert "Balance: $69.50 remaining" in out
    assert "Account: $69.50 remaining ($250.00 credits, $180.50 used)" in out


def test_the_headline_is_the_tighter_of_key_and_account(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_account(total_credits=100.0, total_usage=92.0)
    code, out, _ = run("--json")
    key = json.loads(out)["keys"][0]
    assert key["limit_remaining"] == 45.23 and key["account_balance"] == 8.0
    assert key["remaining"] == 8.0 and code == 1
    log = CreditLog.objects.filter(key__is_primary=True).get()
    assert (log.account_credits, log.account_usage, log.account_balance) == (100.0, 92.0, 8.0)


def test_a_403_from_credits_means_unavailable_not_exhausted(sim):
    code, out, _ = run("--json")  # inference key only: /credits answers 403
    key = json.loads(out)["keys"][0]
    assert key["account_balance"] is None and "MANAGEMENT_KEY" in key["account_note"]
    assert key["remaining"] == 45.23 and code == 0


def test_a_silent_zero_from_credits_means_unavailable_not_exhausted(sim):
    sim.set_scenario("credits-zero-quirk")
    code, out, _ = run("--json")
    key = json.loads(out)["keys"][0]
    assert key["account_balance"] is None
    assert key["remaining"] == 45.23 and code == 0


def test_no_key_configured_says_where_to_set_it(sim, settings):
    settings.OPENROUTER_API_KEY = ""
    code, out, err = run()
    assert code == 3
    assert "OPENROUTER_API_KEY not set" in out and ".env" in out
    assert CreditLog.objects.get().ok is False


def test_it_sends_the_attribution_headers_and_never_logs_the_key(sim):
    run()
    request = next(r for r in sim.requests if r["path"].endswith("/key"))
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-title"] == settings.OPENROUTER_X_TITLE
    assert headers["http-referer"] == settings.OPENROUTER_HTTP_REFERER
    assert PROD_KEY not in json.dumps(sim.requests)


FAILURES = {
    "http401": ("OpenRouter API error (401)", 401),
    "http402": ("OpenRouter API error (402)", 402),
    "http403": ("OpenRouter API error (403)", 403),
    "http429": ("OpenRouter API error (429)", 429),
    "http500": ("OpenRouter API error (500)", 500),
    "http502": ("OpenRouter API error (502)", 502),
    "http503": ("OpenRouter API error (503)", 503),
    "slow": ("did not answer within 2 s", None),
    "slow-body": ("did not finish answering within 2 s", None),
    "html": ("text/html instead of JSON", None),
    "malformed": ("malformed JSON", None),
    "wrong-types": ("is str, not a number", None),
    "nan": ("NaN is not valid JSON", None),
    "huge": ("exceeds", None),
    "empty": ("no `data` object", None),
}


@pytest.mark.parametrize("scenario", FAILURES)
def test_every_failure_is_one_clear_line_exit_3_and_recorded(sim, scenario):
    expected, status = FAILURES[scenario]
    sim.set_scenario(scenario)
    code, out, err = run()
    # A rejected key, an empty account or a spent budget (the simulator's 403 names one) is CRITICAL at once
    # (the service fails too); the rest is UNKNOWN.
    assert code == (2 if status in (401, 402, 403) else 3)
    error_lines = err.strip().splitlines()
    assert len(error_lines) == 1 and expected in error_lines[0], err
    assert "Traceback" not in out + err
    log = CreditLog.objects.get()
    assert log.ok is False and expected in log.error and log.http_status == status
    stored = json.dumps(list(CreditLog.objects.values()), default=str)
    assert PROD_KEY not in out + err + stored


def test_a_401_says_where_to_get_a_new_key(sim):
    sim.set_scenario("http401")
    _, _, err = run()
    assert "invalid or disabled" in err and "https://openrouter.ai/keys" in err


def test_a_429_is_retried_honouring_retry_after(sim):
    sim.set_failure("http429", count=1)  # the first request fails, the retry succeeds
    snapshot = Client.from_settings().get_key()
    assert snapshot.limit_remaining == 45.23
    assert [r["path"] for r in sim.requests] == ["/api/v1/key", "/api/v1/key"]


def test_a_401_is_not_retried(sim):
    sim.set_scenario("http401")
    with pytest.raises(OpenRouterError) as raised:
        Client.from_settings().get_key()
    assert raised.value.status == 401
    assert len(sim.requests) == 1


def test_retries_are_bounded(sim, settings):
    settings.OPENROUTER_MAX_RETRIES = 3
    sim.set_failure("http503")
    with pytest.raises(OpenRouterError) as raised:
        Client.from_settings().get_key()
    assert "(503)" in str(raised.value)
    assert len(sim.requests) == 4  # one try and three retries, each after Retry-After: 1


def test_the_log_file_never_holds_the_key(sim):
    sim.set_scenario("http500")
    run()
    log_file = Path(settings.LOG_DIR) / "creditmon.log"
    assert "OpenRouter API error (500)" in log_file.read_text()
    assert PROD_KEY not in log_file.read_text()


def test_a_database_never_migrated_says_run_migrate(tmp_path, sim):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "OPENROUTER_API_KEY": PROD_KEY,
        "OPENROUTER_BASE_URL": sim.url,
        "CREDITMON_LOG_DIR": str(tmp_path),
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "checkcredits"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert "run `python manage.py migrate`" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_many_keys_give_the_seed_block_for_the_watched_key_then_one_line_per_listed_key(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_scenario("many-keys")
    code, out, _ = run()
    assert out.count("API Key: ") == 1  # the seed's block for the key watched directly, not 151 of them
    assert "Account: $69.50 remaining" in out
    listed = ApiKey.objects.filter(source=ApiKey.SOURCE_LISTED).count()
    assert f"Keys listed by the management key: {listed}, worst first" in out
    shown = [line for line in out.splitlines() if line[:2] in ("✓ ", "⚠ ", "✗ ", "? ") and "  " in line]
    assert shown and all(not line.startswith("✓ OK") for line in shown)  # only the keys needing a look
    assert "more OK (--all lists every key)" in out
    assert f"Overall: {['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'][code]}" in out

    code_all, out_all, _ = run("--all")
    lines = [line for line in out_all.splitlines() if line[:2] in ("✓ ", "⚠ ", "✗ ", "? ") and "  " in line]
    assert len(lines) == listed and code_all == code
    severities = ["✗", "?", "⚠", "✓"]
    assert [severities.index(line[0]) for line in lines] == sorted(severities.index(line[0]) for line in lines)
    payload = json.loads(run("--json")[1])
    assert len(payload["keys"]) == listed + 1 and payload["account"]["balance"] == 69.5
