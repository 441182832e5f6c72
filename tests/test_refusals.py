"""Nonsense gets a plain answer: unknown keys and ranges on the pages and the API, argument errors and closed pipes
on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone

from monitoring.models import ApiKey, CreditLog
from monitoring.simulator import MANAGEMENT_KEY

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, django_user_model, settings):
    settings.OPENROUTER_API_KEY = ""
    settings.CREDITMON_TIME_ZONE = "UTC"
    client.force_login(django_user_model.objects.create_user("alice", password="correct horse battery staple"))
    return client


def make_key(name: str, digest: str, primary: bool = False) -> ApiKey:
    key = ApiKey.objects.create(hash=digest, name=name, is_primary=primary, credit_limit=100.0)
    now = timezone.now()
    CreditLog.objects.bulk_create(
        CreditLog(key=key, timestamp=now - timedelta(hours=6 * k), usage=40 - k, credit_limit=100, remaining=60 + k)
        for k in range(4)
    )
    return key


@pytest.fixture
def two_keys():
    return make_key("Production Key", "a1" * 32, primary=True), make_key("Dev Key", "b2" * 32)


def manage(*args: str, db: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "OPENROUTER_API_KEY": ""}
    env["CREDITMON_LOG_DIR"] = str(db.parent)

    env.pop("REDIS_URL", None)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True, **pipes)


# --- pages and the API ----------------------------------------------------------------------------


@pytest.mark.parametrize("wanted", ["999", "abc", "a1a1", "c3" * 32])
def test_financial_answers_404_with_a_sentence_for_a_key_it_does_not_watch(logged_in, two_keys, wanted):
    response = logged_in.get("/financial/", {"key": wanted})
    assert response.status_code == 404
    assert f"No watched key has the id or hash “{wanted}”." in response.text
    assert 'class="topbar"' in response.text  # the product's own page, not Django's bare 404
    assert "?key=a1a1a1a1a1a1" in response.text  # the keys it does watch, to choose from


def test_financial_answers_400_for_a_range_it_does_not_offer(logged_in, two_keys):
    response = logged_in.get("/financial/?range=abc")
    assert response.status_code == 400
    assert "The range “abc” is not one of 7, 30, 90, all." in response.text


@pytest.mark.parametrize("form", ["full", "prefix", "id"])
def test_financial_shows_the_key_named_by_its_hash_or_its_id(logged_in, two_keys, form):
    dev = two_keys[1]
    wanted = {"full": dev.hash, "prefix": dev.hash[:12], "id": str(dev.pk)}[form]
    response = logged_in.get("/financial/", {"key": wanted})
    assert response.status_code == 200
    assert response.context["key"] == dev
    assert 'Key <strong class="key-name">Dev Key</strong>' in response.text


def test_exports_refuse_an_unknown_key_and_accept_a_hash(logged_in, two_keys):
    assert logged_in.get("/export/credit-log.csv?days=7&key=nope-nope").status_code == 404
    response = logged_in.get(f"/export/credit-log.csv?days=7&key={two_keys[1].hash[:12]}")
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and "Dev Key" in body and "Production Key" not in body


def test_the_history_api_says_no_such_key(logged_in, two_keys):
    response = logged_in.get("/api/history/?key=nope")
    assert response.status_code == 404
    assert response.json() == {"error": "no such key: nope"}
    found = logged_in.get(f"/api/history/?key={two_keys[1].hash[:12]}").json()
    assert [k["key"] for k in found["keys"]] == ["Dev Key"]


@pytest.mark.parametrize("days", ["0", "-1", "3661"])
def test_a_range_out_of_bounds_names_the_bounds_it_accepts(logged_in, days):
    response = logged_in.get(f"/api/history/?days={days}")
    assert response.status_code == 400
    assert response.json()["error"] == "days must be more than 0 and at most 3660"


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("cli") / "cli.sqlite3"
    done = manage("migrate", "-v0", db=db)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    # Two months of half-hourly checks: every listing outgrows the pipe's 64 KiB buffer, so the writer meets a
    # closed end. Written in bulk: the demo's generator runs the real job and would take a minute for the same.
    seeded = manage("shell", "-c", BULK_HISTORY, db=db)
    assert seeded.wait(timeout=120) == 0, seeded.stderr.read()
    return db


BULK_HISTORY = """
from datetime import timedelta
from django.utils import timezone
from monitoring.models import ApiKey, CreditLog
key = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
now = timezone.now()
CreditLog.objects.bulk_create(
    CreditLog(key=key, timestamp=now - timedelta(minutes=30 * i), usage=100 - i * 0.01, remaining=50 + i * 0.01,
              credit_limit=150.0, account_balance=80 + i * 0.01)
    for i in range(3000)
)
"""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["checkcredits", "--jsn"], "Error: unrecognized arguments: --jsn"),
        (["checkcredits", "--threshold=abc"], "'abc' is not valid: expected a plain number, e.g. 10"),
        (["checkcredits", "--threshold=nan"], "'nan' is not valid: expected a plain number, e.g. 10"),
        (["checkcredits", "--threshold=inf"], "'inf' is not valid: expected a plain number, e.g. 10"),
        (["checkcredits", "--threshold=-5"], "'-5' is not valid: expected a number of at least 0"),
        (["credithistory", "--days=0"], "--days must be more than 0 and at most 3660"),
        (["exportcsv", "nothing"], "argument export: invalid choice: 'nothing'"),
    ],
)
def test_an_argument_error_is_one_line_and_exit_3(migrated_db, args, said):
    done = manage(*args, db=migrated_db)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 3  # UNKNOWN: a typo in a cron line must not read as CRITICAL (2)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], err
    assert "usage:" not in err and "Traceback" not in err


def test_the_same_refusal_in_process_is_a_command_error_with_exit_3():
    with pytest.raises(CommandError) as refused:
        call_command("checkcredits", "--threshold=nan", stdout=StringIO(), stderr=StringIO())
    assert refused.value.returncode == 3 and "expected a plain number" in str(refused.value)


@pytest.mark.parametrize(
    ("args", "codes"),
    [
        (["credithistory"], {141}),
        (["exportcsv", "credit-log"], {141}),
        (["credithistory", "--json"], {0, 141}),  # one large write: the kernel may take it whole before the close
    ],
)
def test_a_closed_pipe_ends_quietly(migrated_db, args, codes):
    done = manage(*args, "--days", "365", db=migrated_db)
    assert done.stdout.readline()  # like `| head -1`: one line, then the reader goes away
    done.stdout.close()
    err = done.stderr.read()
    done.wait(timeout=60)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipeError" not in err, err
    assert done.returncode in codes, done.returncode  # 141: stopped by the closed pipe, as a shell reports it


def test_all_shows_each_listed_keys_burn_rate(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    sim.set_scenario("many-keys")
    with pytest.raises(SystemExit):
        call_command("checkcredits", stdout=StringIO(), stderr=StringIO())
    # The first readings, moved two days back and $4 lower: each listed key then burns $2/day.
    two_days_ago = timezone.now() - timedelta(days=2)
    CreditLog.objects.filter(key__source=ApiKey.SOURCE_LISTED).update(timestamp=two_days_ago, usage=F("usage") - 4)
    for args, window in ((["--all"], ""), (["--all", "--verbose"], " (over the last 2.0 days)")):
        out = StringIO()
        with pytest.raises(SystemExit):
            call_command("checkcredits", *args, stdout=out, stderr=StringIO())
        listed = [line for line in out.getvalue().splitlines() if " key-" in line and "left" in line]
        assert len(listed) > 100, out.getvalue()[-2000:]
        assert all(f"$2.00/day{window}" in line for line in listed), listed[:3]
