"""CSV exports: the credit log, spend by model and by key, from the web (logged in) and the CLI."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring.models import Activity, ApiKey, CreditLog
from monitoring.monitor import check_all
from monitoring.simulator import PROD_KEY


@pytest.fixture
def seeded(db):
    now = timezone.now()
    prod = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
    dev = ApiKey.objects.create(hash="b" * 64, name="=HYPERLINK(evil)")
    rows = [
        CreditLog(key=prod, timestamp=now - timedelta(days=d), usage=50.0 - d, remaining=50.0 + d, credit_limit=100.0)
        for d in range(60)
    ]
    rows.append(CreditLog(key=dev, timestamp=now - timedelta(days=1), ok=False, error="OpenRouter API error (502)"))
    CreditLog.objects.bulk_create(rows)
    today = now.date()
    activity = []
    for days_ago in (1, 2, 40):
        day = today - timedelta(days=days_ago)
        for key_hash, model, usage in [
            ("a" * 64, "openai/gpt-4.1", 2.0),
            ("a" * 64, "anthropic/claude-sonnet-4", 1.0),
            ("b" * 64, "openai/gpt-4.1", 0.5),
            ("", "openai/gpt-4.1", 2.5),  # OpenRouter's all-keys row for that model
            ("", "anthropic/claude-sonnet-4", 1.0),
        ]:
            for endpoint in ("e1", "e2"):  # two providers of the same model
                activity.append(
                    Activity(
                        date=day,
                        api_key_hash=key_hash,
                        model=model,
                        endpoint_id=endpoint,
                        usage=usage / 2,
                        requests=10,
                        prompt_tokens=100,
                        completion_tokens=50,
                    )
                )
    Activity.objects.bulk_create(activity)
    return {"now": now, "today": today}


@pytest.fixture
def user_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", password="x" * 12))
    return client


def read(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.parametrize("path", ["credit-log", "spend-by-model", "spend-by-key"])
def test_it_requires_login(seeded, client, path):
    response = client.get(f"/export/{path}.csv?days=7")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_credit_log_export_streams_the_chosen_days(seeded, user_client):
    response = user_client.get("/export/credit-log.csv?days=7")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="creditmon-credit-log-')
    rows = read(response)
    assert len(rows) == 8  # days 0..6 of prod plus dev's failure
    assert rows[0]["timestamp"] < rows[-1]["timestamp"]
    prod_now = rows[-1]
    assert prod_now["key"] == "Production Key"
    assert prod_now["key_hash"] == "a" * 12
    assert float(prod_now["usage_usd"]) == 50.0
    assert float(prod_now["remaining_usd"]) == 50.0
    failed = [r for r in rows if r["ok"] == "false"]
    assert failed[0]["error"] == "OpenRouter API error (502)"


def test_a_name_that_looks_like_a_formula_is_defused(seeded, user_client):
    rows = read(user_client.get("/export/credit-log.csv?days=7"))
    assert "'=HYPERLINK(evil)" in {r["key"] for r in rows}


def test_the_credit_log_export_takes_a_date_range(seeded, user_client):
    day = seeded["now"].date() - timedelta(days=10)
    rows = read(user_client.get(f"/export/credit-log.csv?start={day}&end={day}"))
    assert len(rows) == 1
    assert rows[0]["timestamp"].startswith(day.isoformat())


def test_a_bad_range_is_explained(seeded, user_client):
    response = user_client.get("/export/credit-log.csv?start=yesterday")
    assert response.status_code == 400
    assert b"YYYY-MM-DD" in response.content


def test_spend_by_model_sums_endpoints_and_never_counts_a_key_twice(seeded, user_client):
    rows = read(user_client.get("/export/spend-by-model.csv?days=7"))
    yesterday = (seeded["today"] - timedelta(days=1)).isoformat()
    day_rows = {r["model"]: r for r in rows if r["date"] == yesterday}
    assert float(day_rows["openai/gpt-4.1"]["usage_usd"]) == 2.5  # the all-keys row, not 2.5 + 2.0 + 0.5
    assert float(day_rows["anthropic/claude-sonnet-4"]["usage_usd"]) == 1.0
    assert int(day_rows["openai/gpt-4.1"]["requests"]) == 20
    assert {r["date"] for r in rows} == {
        (seeded["today"] - timedelta(days=n)).isoformat() for n in (1, 2)
    }  # day 40 is outside the range


def test_spend_by_key_names_each_key_from_its_hash(seeded, user_client):
    rows = read(user_client.get("/export/spend-by-key.csv?days=7"))
    yesterday = (seeded["today"] - timedelta(days=1)).isoformat()
    day_rows = {r["key"]: r for r in rows if r["date"] == yesterday}
    assert float(day_rows["Production Key"]["usage_usd"]) == 3.0
    assert day_rows["Production Key"]["key_hash"] == "a" * 12
    assert float(day_rows["'=HYPERLINK(evil)"]["usage_usd"]) == 0.5
    assert len(rows) == 4


def test_the_cli_writes_the_same_export_to_a_file(seeded, tmp_path):
    out = tmp_path / "spend.csv"
    stderr = io.StringIO()
    call_command("exportcsv", "spend-by-model", "--days", "60", "--output", str(out), stderr=stderr)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6  # 2 models x 3 days
    assert "Wrote 6 rows" in stderr.getvalue()


def test_the_cli_writes_to_stdout_by_default(seeded):
    stdout = io.StringIO()
    call_command("exportcsv", "credit-log", "--days", "3", stdout=stdout)
    rows = list(csv.DictReader(io.StringIO(stdout.getvalue())))
    assert len(rows) == 4
    assert rows[0]["key"] in {"Production Key", "'=HYPERLINK(evil)"}


def test_the_cli_takes_start_and_end(seeded):
    stdout = io.StringIO()
    first = seeded["today"] - timedelta(days=2)
    call_command("exportcsv", "spend-by-key", "--start", str(first), "--end", str(first), stdout=stdout)
    rows = list(csv.DictReader(io.StringIO(stdout.getvalue())))
    assert {r["date"] for r in rows} == {first.isoformat()}


def test_the_cli_refuses_a_bad_range_with_a_message(seeded):
    with pytest.raises(CommandError, match="end is before start"):
        call_command("exportcsv", "credit-log", "--start", "2026-02-10", "--end", "2026-02-01")


def test_the_cli_reports_an_unwritable_file(seeded, tmp_path):
    with pytest.raises(CommandError, match="cannot write"):
        call_command("exportcsv", "credit-log", "--output", str(tmp_path / "no" / "such" / "dir.csv"))


def test_an_export_of_a_real_check_never_contains_the_key(db, sim, user_client):
    check_all()
    body = b"".join(user_client.get("/export/credit-log.csv?days=1").streaming_content).decode()
    assert PROD_KEY not in body
    assert "45.23" in body


def test_an_empty_range_gives_just_the_header(db, user_client):
    body = b"".join(
        user_client.get(f"/export/spend-by-key.csv?start={date(2020, 1, 1)}&end=2020-01-02").streaming_content
    ).decode()
    assert body.strip() == "date,key,key_hash,usage_usd,byok_usage_usd,requests"


def test_amounts_are_written_to_the_cent(seeded, user_client):
    prod = ApiKey.objects.get(name="Production Key")
    CreditLog.objects.create(key=prod, usage=69.44963372999999, remaining=30.55036627000001, credit_limit=100.0)
    rows = read(user_client.get("/export/credit-log.csv?days=1"))
    newest = rows[-1]
    assert (newest["usage_usd"], newest["remaining_usd"], newest["limit_usd"]) == ("69.45", "30.55", "100.00")
    assert newest["limit_remaining_usd"] == ""  # unknown stays empty, never 0.00
    for row in read(user_client.get("/export/spend-by-model.csv?days=3")):
        assert len(row["usage_usd"].split(".")[1]) == 2


def test_the_financial_page_exports_its_key_and_its_calendar_days(seeded, user_client):
    dev = ApiKey.objects.get(name="=HYPERLINK(evil)")
    page = user_client.get(f"/financial/?key={dev.pk}&range=7").content.decode()
    start = (timezone.localdate() - timedelta(days=6)).isoformat()
    link = f'/export/credit-log.csv?start={start}&amp;end={timezone.localdate().isoformat()}&amp;key={dev.pk}"'
    assert link in page
    assert "Export (CSV, last 7 days:" in page
    rows = read(user_client.get(link[:-1].replace("&amp;", "&")))
    assert [r["key"] for r in rows] == ["'=HYPERLINK(evil)"]  # only the chosen key's checks
    everything = user_client.get("/financial/?range=all").content.decode()
    assert "Export (CSV, all history:" in everything and "last 31 days" not in everything
    assert user_client.get("/export/credit-log.csv?days=7&key=999").status_code == 404
