"""The JSON API (/api/status/, /api/history/) and the /healthz probe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitoring.models import Alert, ApiKey, CreditLog, Level
from monitoring.monitor import check_all
from monitoring.simulator import PROD_KEY

TOKEN = "api-secret-token"


@pytest.fixture
def seeded(db, settings):
    """Prod: 40 days of checks every 30 minutes, $1.20/day. Dev: one check, then an open alert."""
    settings.API_TOKEN = TOKEN
    settings.OPENROUTER_CREDIT_THRESHOLD = 10.0
    now = timezone.now()
    prod = ApiKey.objects.create(hash="a" * 64, name="Production Key", is_primary=True)
    dev = ApiKey.objects.create(hash="b" * 64, name="Dev Key")
    steps = 40 * 48
    rows = [
        CreditLog(
            key=prod,
            timestamp=now - timedelta(minutes=30 * i),
            usage=60.0 - i * 0.025,
            remaining=40.0 + i * 0.025,
            credit_limit=100.0,
            account_balance=69.5,
        )
        for i in range(steps, -1, -1)
    ]
    rows.append(CreditLog(key=dev, timestamp=now - timedelta(hours=1), usage=15.5, remaining=4.5, credit_limit=20.0))
    CreditLog.objects.bulk_create(rows)
    Alert.objects.create(key=dev, condition=Alert.BALANCE, level=Level.WARNING, message="Credits low: $4.50")
    return {"prod": prod, "dev": dev, "now": now}


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def by_name(payload):
    return {entry["key"]: entry for entry in payload["keys"]}


@pytest.mark.parametrize("path", ["/api/status/", "/api/history/?days=30"])
def test_it_refuses_requests_without_a_token_or_a_session(seeded, client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert "API_TOKEN" in response.json()["error"]


@pytest.mark.parametrize("path", ["/api/status/", "/api/history/?days=30"])
def test_it_refuses_a_wrong_token_even_with_a_session(seeded, client, django_user_model, path):
    client.force_login(django_user_model.objects.create_user("ops", password="x" * 12))
    assert client.get(path, headers=bearer("guess")).status_code == 401


def test_it_refuses_any_token_while_api_token_is_unset(seeded, client, settings):
    settings.API_TOKEN = ""
    assert client.get("/api/status/", headers=bearer("")).status_code == 401
    assert client.get("/api/status/", headers=bearer("anything")).status_code == 401


def test_status_with_the_token_gives_each_keys_figures(seeded, client):
    response = client.get("/api/status/", headers=bearer())
    assert response.status_code == 200
    payload = response.json()
    prod = by_name(payload)["Production Key"]
    assert prod["key_hash"] == "a" * 12
    assert prod["remaining"] == 40.0
    assert prod["usage"] == 60.0
    assert prod["limit"] == 100.0
    assert prod["account_balance"] == 69.5
    assert prod["burn_rate_per_day"] == {"1d": 1.2, "7d": 1.2, "30d": 1.2}
    assert prod["days_left"] == pytest.approx(33.3, abs=0.05)
    exhaustion = datetime.fromisoformat(prod["exhaustion_date"])
    assert exhaustion - seeded["now"] == pytest.approx(timedelta(days=40 / 1.2), abs=timedelta(minutes=5))
    assert prod["level"] == "OK"
    assert prod["consecutive_failures"] == 0
    assert prod["open_alerts"] == []
    assert payload["account_balance"] == 69.5


def test_status_shows_open_alerts_and_the_level(seeded, client):
    dev = by_name(client.get("/api/status/", headers=bearer()).json())["Dev Key"]
    assert dev["level"] == "WARNING"
    assert dev["burn_rate_per_day"]["7d"] is None  # one reading: not enough for a rate
    assert [a["condition"] for a in dev["open_alerts"]] == ["balance"]
    assert dev["open_alerts"][0]["level"] == "WARNING"


def test_status_pages_the_keys_worst_first_and_filters_by_level(seeded, client):
    for n in range(5):
        key = ApiKey.objects.create(hash=f"{n}" * 64, name=f"Extra {n}")
        CreditLog.objects.create(key=key, usage=1.0, remaining=90.0, credit_limit=100.0)
    whole = client.get("/api/status/", headers=bearer()).json()
    assert whole["page"] == {"number": 1, "per_page": 500, "pages": 1, "keys": 7, "level": None}
    pages = [client.get(f"/api/status/?per_page=3&page={n}", headers=bearer()).json() for n in (1, 2, 3)]
    assert [len(p["keys"]) for p in pages] == [3, 3, 1]
    assert [k["key"] for p in pages for k in p["keys"]] == [k["key"] for k in whole["keys"]]
    assert all(p["counts"] == whole["counts"] and p["level"] == whole["level"] for p in pages)
    warned = client.get("/api/status/?level=warning", headers=bearer()).json()
    assert [k["key"] for k in warned["keys"]] == ["Dev Key"] and warned["page"]["keys"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [("level=bad", "level must be one of ok, warning, critical, unknown"), ("page=0", "page must be a whole number"),
     ("per_page=5000", "per_page must be a whole number from 1 to 1000"), ("page=9", "page 9 is past the last page")],
)  # fmt: skip
def test_status_explains_a_bad_page(seeded, client, query, message):
    response = client.get(f"/api/status/?{query}", headers=bearer())
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_status_works_with_a_logged_in_session(seeded, client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", password="x" * 12))
    response = client.get("/api/status/")
    assert response.status_code == 200
    assert set(by_name(response.json())) == {"Production Key", "Dev Key"}


def test_status_after_a_real_check_names_the_next_one_and_never_the_key(db, sim, client, settings):
    settings.API_TOKEN = TOKEN
    check_all()
    response = client.get("/api/status/", headers=bearer())
    assert PROD_KEY not in response.content.decode()
    payload = response.json()
    assert payload["next_check"] is not None  # the schedule from the migration
    (entry,) = payload["keys"]
    assert entry["remaining"] == 45.23
    assert entry["last_check_ok"] is True


def test_history_of_a_day_returns_every_check(seeded, client):
    payload = client.get("/api/history/?days=1", headers=bearer()).json()
    assert payload["resolution"] == "raw"
    points = by_name(payload)["Production Key"]["points"]
    assert len(points) == 48  # every 30 minutes over the last 24 hours
    assert points[-1]["usage"] == 60.0
    assert points[0]["t"] < points[-1]["t"]


def test_history_of_two_weeks_is_bucketed_by_the_database_per_hour(seeded, client):
    payload = client.get("/api/history/?days=14", headers=bearer()).json()
    assert payload["resolution"] == "hour"
    points = by_name(payload)["Production Key"]["points"]
    assert 336 <= len(points) <= 337
    assert {p["checks"] for p in points[1:-1]} == {2}
    last = points[-1]
    assert last["usage"] == 60.0  # the highest cumulative usage in the bucket
    assert datetime.fromisoformat(last["t"]).minute == 0


def test_history_of_a_month_is_bucketed_per_day(seeded, client):
    payload = client.get("/api/history/?days=30", headers=bearer()).json()
    assert payload["resolution"] == "day"
    assert 30 <= len(by_name(payload)["Production Key"]["points"]) <= 31
    hourly = client.get("/api/history/?days=30&resolution=hour", headers=bearer()).json()
    assert hourly["resolution"] == "hour" and len(by_name(hourly)["Production Key"]["points"]) >= 720


def test_history_beyond_sixty_days_is_bucketed_per_day(seeded, client):
    payload = client.get("/api/history/?days=90", headers=bearer()).json()
    assert payload["resolution"] == "day"
    points = by_name(payload)["Production Key"]["points"]
    assert 40 <= len(points) <= 42
    assert sum(p["checks"] for p in points) == 40 * 48 + 1


def test_history_takes_a_date_range(seeded, client):
    day = (seeded["now"] - timedelta(days=5)).date()
    url = f"/api/history/?start={day.isoformat()}&end={day.isoformat()}&resolution=hour"
    payload = client.get(url, headers=bearer()).json()
    points = by_name(payload)["Production Key"]["points"]
    assert len(points) == 24
    assert {datetime.fromisoformat(p["t"]).astimezone(UTC).date() for p in points} == {day}


def test_history_can_be_limited_to_one_key_by_hash_prefix(seeded, client):
    payload = client.get("/api/history/?days=2&key=bbbbbb", headers=bearer()).json()
    assert list(by_name(payload)) == ["Dev Key"]


@pytest.mark.parametrize(
    "query, message",
    [
        ("days=abc", "days must be a number"),
        ("days=-3", "days must be more than 0 and at most 3660"),
        ("start=2026-13-01", "YYYY-MM-DD"),
        ("start=2026-02-10&end=2026-02-01", "end is before start"),
        ("days=30&resolution=raw", "up to 7 days"),
    ],
)
def test_history_explains_a_bad_range(seeded, client, query, message):
    response = client.get(f"/api/history/?{query}", headers=bearer())
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_healthz_needs_no_login_and_says_only_ok(seeded, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_healthz_answers_503_when_the_database_is_gone(db, client, settings, tmp_path):
    from django.db import connections

    original = dict(settings.DATABASES["default"])
    connection.close()
    broken = {**original, "ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "missing" / "db.sqlite3")}
    connections["default"].settings_dict.update(broken)
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connections["default"].settings_dict.update(original)
    assert response.status_code == 503
    assert response.json()["status"] == "error"
