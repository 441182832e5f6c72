"""The dashboard pages through Django's test client: login, figures, empty and broken states, actions, query bounds."""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import UTC, date, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from monitoring.models import Activity, Alert, AlertEvent, ApiKey, CreditLog, DailyFigure, Delivery, Level
from monitoring.schedule import LEASE_NAME, acquire_lease
from monitoring.simulator import MANAGEMENT_KEY, PROD_KEY
from tests.people import make_operator
from tests.qworker import purge_queue, run_queued

PAGES = ["/health/", "/financial/", "/alerts/"]
POSTS = ["/health/check-now/", "/alerts/1/acknowledge/", "/alerts/1/snooze/", "/alerts/send-test/"]


@pytest.fixture
def user(django_user_model):
    """An operator: these tests press the buttons (tests/test_roles.py covers viewers)."""
    return make_operator(django_user_model.objects.create_user("alice", password="correct horse battery staple"))


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def empty_queue():
    purge_queue()
    yield
    purge_queue()


@pytest.fixture
def configured(settings):
    """A key is configured (checks are not made in these tests unless they use `sim`)."""
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.CREDITMON_TIME_ZONE = "UTC"
    settings.BURN_RATE_WINDOW_DAYS = 7
    settings.MONTHLY_BUDGET = 0.0
    return settings


def make_key(name="Production Key", primary=True, limit=100.0) -> ApiKey:
    return ApiKey.objects.create(
        hash=f"hash-{name}", name=name, label="sk-or-v1-abc...123", is_primary=primary, credit_limit=limit
    )


def seed(key, count, *, step=timedelta(hours=6), usage=10.0, spend=0.5, limit=100.0, account=True, end=None):
    """`count` successful checks ending now, `spend` dollars apart: a burn rate of spend * (1 day / step)."""
    end = end or timezone.now()
    rows = []
    for i in range(count):
        used = usage + spend * i
        rows.append(
            CreditLog(
                timestamp=end - step * (count - 1 - i),
                key=key,
                label=key.label,
                usage=used,
                credit_limit=limit,
                limit_remaining=None if limit is None else limit - used,
                remaining=None if limit is None else limit - used,
                account_credits=250.0 if account else None,
                account_usage=150.0 + used if account else None,
                account_balance=100.0 - used if account else None,
            )
        )
    CreditLog.objects.bulk_create(rows, batch_size=2000)
    return rows


def chart_data(response) -> dict:
    match = re.search(r'<script id="financial-data" type="application/json">(.*?)</script>', response.text, re.S)
    assert match, "the Financial page hands its chart data over with json_script"
    return json.loads(match.group(1))


# --- login ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_it_requires_login_for_every_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("url", POSTS)
def test_it_requires_login_for_every_action(client, url):
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_login_page_is_open_and_logs_in(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'name="password"' in page.text
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert response["Location"] == "/health/"


@pytest.mark.django_db
def test_a_wrong_password_says_so(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "did not match" in response.text


@pytest.mark.django_db
def test_the_root_redirects_to_system_health(logged_in):
    response = logged_in.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/health/"


# --- what the pages show ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_shows_the_seeded_figures(logged_in, configured):
    key = make_key()
    seed(key, 10)  # usage 10.0 .. 14.5, 0.5 every 6 hours: $2.00/day
    page = logged_in.get("/health/")
    assert page.status_code == 200
    text = page.text
    assert "$85.50" in text  # remaining 100 - 14.5
    assert "$14.50 / $100.00 (14%)" in text  # usage against limit (the seed's 15% rounds from 14.5)
    assert "$2.00/day" in text
    assert "42.8 days" in text  # 85.5 / 2.0
    assert "$85.50" in text and "badge-ok" in text
    assert "succeeded" in text
    assert "Last successful check:" in text


@pytest.mark.django_db
def test_health_shows_the_account_balance_and_the_warning_colour(logged_in, configured):
    key = make_key()
    seed(key, 4, usage=92.0)  # remaining 8.0 .. 6.5: below the $10 threshold
    text = logged_in.get("/health/").text
    assert 'class="card key-card level-warning"' in text
    assert "Credits low: $6.50 remaining (threshold $10.00)" in text
    assert "$250.00 bought" in text
    assert ">WARNING<" in text


@pytest.mark.django_db
def test_financial_shows_burn_rates_side_by_side_and_the_forecast(logged_in, configured):
    key = make_key()
    seed(key, 10)
    response = logged_in.get("/financial/")
    assert response.status_code == 200
    rates = [(w, t.strip()) for w, t in re.findall(r'<dd data-window="(\d+)">([^<]+)', response.text)]
    assert rates == [("1", "$2.00/day"), ("7", "$2.00/day"), ("30", "$2.00/day")]
    # Readings over 2.25 days: each window says the span it really used.
    assert [r["span_text"] for r in response.context["key_data"]["rates"]] == [
        "over the last 18.0 hours",
        "over the last 2.2 days",
        "over the last 2.2 days",
    ]
    assert "42.8 days" in response.text
    exhaustion = (timezone.now() + timedelta(days=42.75)).date().isoformat()
    assert f"runs out around {exhaustion}" in response.text
    data = chart_data(response)
    assert sum(data["spend"]["values"]) == pytest.approx(4.5)
    assert len(data["balance"]["points"]) == len(data["spend"]["labels"])
    assert data["balance"]["points"][-1]["y"] == pytest.approx(85.5)
    forecast = data["balance"]["forecast"]
    assert [p["y"] for p in forecast] == [pytest.approx(85.5), pytest.approx(0.0)]


@pytest.mark.django_db
def test_financial_range_selector_limits_the_days(logged_in, configured):
    key = make_key()
    seed(key, 60, step=timedelta(days=1))
    week = chart_data(logged_in.get("/financial/?range=7"))
    month = chart_data(logged_in.get("/financial/?range=30"))
    everything = chart_data(logged_in.get("/financial/?range=all"))
    assert len(week["spend"]["labels"]) == 7
    assert len(month["spend"]["labels"]) == 30
    assert len(everything["spend"]["labels"]) == 60
    assert week["spend"]["values"] == [0.5] * 7  # the first day's spend counts from the day before the range
    assert logged_in.get("/financial/?range=999").status_code == 400  # refused, not quietly shown as 30 days


@pytest.mark.django_db
def test_financial_uses_weekly_buckets_for_a_long_history(logged_in, configured):
    key = make_key()
    seed(key, 400, step=timedelta(days=1), spend=0.1)
    data = chart_data(logged_in.get("/financial/?range=all"))
    assert 57 <= len(data["spend"]["labels"]) <= 59
    assert data["spend"]["labels"][0].startswith("week of ")


@pytest.mark.django_db
def test_financial_marks_top_ups_of_the_key_and_the_account(logged_in, configured):
    key = make_key()
    rows = seed(key, 10, step=timedelta(days=1))
    # Day 6 the account bought $50 more and the key's cap was raised by $20.
    for row in CreditLog.objects.filter(timestamp__gte=rows[6].timestamp):
        row.account_credits = 300.0
        row.account_balance += 50
        row.credit_limit = 120.0
        row.save()
    response = logged_in.get("/financial/")
    data = chart_data(response)
    assert [p["amount"] for p in data["account"]["topups"]] == [50.0]
    # Each on its own chart with its own amount: the cap raise is not the purchase (nor their sum).
    assert [p["amount"] for p in data["balance"]["topups"]] == [20.0]
    assert "Top-up of $50.00" in response.text


@pytest.mark.django_db
def test_financial_shows_month_to_date_and_the_projection_against_the_budget(logged_in, configured):
    configured.MONTHLY_BUDGET = 20.0
    key = make_key()
    seed(key, 120, step=timedelta(hours=1), spend=0.5)  # account usage grows $12/day
    response = logged_in.get("/financial/")
    ctx = response.context["account"]
    assert ctx["burn_rate"] == pytest.approx(12.0)
    assert ctx["projected"] > 20.0
    assert ctx["over_budget"] is True
    assert "projected over budget" in response.text
    assert "$20.00" in response.text


@pytest.mark.django_db
def test_financial_shows_spend_by_model_and_by_key_from_activity(logged_in, configured):
    prod = make_key()
    dev = make_key("<b>Dev</b>", primary=False, limit=20.0)
    seed(prod, 3)
    today = timezone.now().date()
    rows = []
    for back in range(1, 6):
        day = today - timedelta(days=back)
        for model, spend in [("openai/gpt-4.1", 3.0), ("anthropic/claude-sonnet-4", 2.0), ("google/gemini", 0.5)]:
            rows.append(Activity(date=day, api_key_hash="", model=model, endpoint_id=model, usage=spend))
        rows.append(Activity(date=day, api_key_hash=prod.hash, model="openai/gpt-4.1", endpoint_id="e", usage=4.0))
        rows.append(Activity(date=day, api_key_hash=dev.hash, model="openai/gpt-4.1", endpoint_id="e", usage=1.5))
    Activity.objects.bulk_create(rows)
    response = logged_in.get("/financial/")
    data = chart_data(response)
    assert [s["label"] for s in data["models"]["datasets"]] == [
        "openai/gpt-4.1",
        "anthropic/claude-sonnet-4",
        "google/gemini",
    ]
    assert len(data["models"]["labels"]) == 5
    assert data["models"]["datasets"][0]["data"] == [3.0] * 5
    assert [s["label"] for s in data["keys"]["datasets"]] == ["Production Key", "<b>Dev</b>"]
    drivers = response.context["breakdown"]["models"]
    assert drivers[0]["name"] == "openai/gpt-4.1"
    assert drivers[0]["spend"] == pytest.approx(15.0)
    assert drivers[0]["share"] == pytest.approx(15.0 / 27.5 * 100)
    assert "&lt;b&gt;Dev&lt;/b&gt;" in response.text
    assert "<b>Dev</b>" not in response.text.replace('"<b>Dev</b>"', "")  # only inside the JSON string
    # The last 30 completed UTC days, as the chart above it draws them.
    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    days = f"start={yesterday - timedelta(days=29)}&amp;end={yesterday}"
    assert f'href="/export/spend-by-model.csv?{days}"' in response.text


@pytest.mark.django_db
def test_the_breakdown_kept_per_sync_follows_every_change_of_the_activity(logged_in, configured):
    """Financial keeps the grouped activity between syncs (monitoring/memo.py): a new row, a sync's upsert of an
    existing row, a deleted row and a renamed key all show at the next view, with nothing cleared by hand."""
    from monitoring.account import store_activity

    prod = make_key()
    seed(prod, 3)
    day = timezone.now().astimezone(UTC).date() - timedelta(days=1)

    def by_model():
        drivers = logged_in.get("/financial/").context["breakdown"]["models"]
        return {d["name"]: round(d["spend"], 2) for d in drivers}

    Activity.objects.create(date=day, api_key_hash="", model="a/one", endpoint_id="e1", usage=2.0)
    Activity.objects.create(date=day, api_key_hash=prod.hash, model="a/one", endpoint_id="e1", usage=2.0)
    assert by_model() == {"a/one": 2.0}
    Activity.objects.create(date=day, api_key_hash="", model="b/two", endpoint_id="e2", usage=1.0)
    assert by_model() == {"a/one": 2.0, "b/two": 1.0}  # a new row
    row = {"date": day.isoformat(), "model": "a/one", "endpoint_id": "e1", "provider_name": "p", "usage": 5.0,
           "byok_usage_inference": 0.0, "requests": 9, "prompt_tokens": 1, "completion_tokens": 1,
           "reasoning_tokens": 0, "cached_tokens": 0, "model_permaslug": "a/one"}  # fmt: skip
    store_activity([row], "", timezone.now() + timedelta(seconds=1), timezone.now().date())
    assert by_model() == {"a/one": 5.0, "b/two": 1.0}  # the same row, upserted by a later sync
    Activity.objects.filter(model="b/two").delete()
    assert by_model() == {"a/one": 5.0}  # retention or the admin deleted a row
    ApiKey.objects.filter(pk=prod.pk).update(name="Renamed Key")
    keys = logged_in.get("/financial/").context["breakdown"]["keys"]
    assert [k["name"] for k in keys] == ["Renamed Key"]  # names are read at each view


@pytest.mark.django_db
def test_spend_by_key_comes_from_the_checks_without_activity(logged_in, configured):
    prod = make_key()
    dev = make_key("Dev Key", primary=False, limit=20.0)
    seed(prod, 5, step=timedelta(days=1), spend=3.0)
    seed(dev, 5, step=timedelta(days=1), spend=0.5, usage=1.0, limit=20.0)
    response = logged_in.get("/financial/")
    data = chart_data(response)
    assert [s["label"] for s in data["keys"]["datasets"]] == ["Production Key", "Dev Key"]
    assert len(data["keys"]["labels"]) == 5
    assert [round(r["spend"], 2) for r in response.context["breakdown"]["keys"]] == [12.0, 2.0]
    assert "From the logged checks" in response.text


@pytest.mark.django_db
def test_financial_can_show_another_key(logged_in, configured):
    make_key()
    dev = make_key("Dev Key", primary=False, limit=20.0)
    seed(dev, 5, usage=1.0, limit=20.0)
    response = logged_in.get(f"/financial/?key={dev.pk}")
    assert response.context["key"] == dev
    assert "$17.00" in response.text  # 20 - (1 + 4 * 0.5)
    unknown = logged_in.get("/financial/?key=99999")
    assert unknown.status_code == 404 and "No watched key has the id or hash" in unknown.text


@pytest.mark.django_db
def test_a_key_label_with_html_is_shown_escaped(logged_in, configured):
    key = ApiKey.objects.create(hash="h1", name="<script>alert('x')</script>", is_primary=True)
    seed(key, 3)
    Alert.objects.create(key=key, condition=Alert.BALANCE, level=Level.WARNING, message="low for <i>you</i>")
    for url in PAGES:
        text = logged_in.get(url).text
        assert "<script>alert(" not in text, url
        assert "&lt;script&gt;alert(" in text or "\\u003Cscript\\u003E" in text, url


@pytest.mark.django_db
def test_the_api_key_never_appears_in_any_page(logged_in, sim, settings, empty_queue):
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    for _ in range(2):
        logged_in.post("/health/check-now/")
        run_queued()
    pages = [logged_in.get(url).text for url in [*PAGES, "/financial/?range=all", "/accounts/login/"]]
    for text in pages:
        assert PROD_KEY not in text
        assert MANAGEMENT_KEY not in text
    assert "$45.23" in pages[0]


@pytest.mark.django_db
def test_many_keys_show_the_primary_first_then_a_table_of_all(logged_in, configured):
    for i in range(9):
        seed(make_key(f"key-{i:02d}", primary=False, limit=10.0), 2, usage=1.0, limit=10.0)
    seed(make_key("Zed primary"), 2)
    page = logged_in.get("/health/")
    names = re.findall(r'<h2 id="key-\d+-name" class="key-name">([^<]+)</h2>', page.text)
    # Worst first; all WARNING here (the shared account runs out in 2.4 days), so the keys' own order.
    assert names == ["Zed primary", "key-00", "key-01", "key-02", "key-03", "key-04"]
    assert "All keys (10)" in page.text
    assert page.text.count('<th scope="row"><a href="/financial/?key=') == 10


@pytest.mark.django_db
def test_dates_are_shown_in_the_reporting_time_zone(logged_in, configured):
    configured.CREDITMON_TIME_ZONE = "America/New_York"
    key = make_key()
    seed(key, 2)
    last = CreditLog.objects.latest("timestamp").timestamp
    local = timezone.localtime(last, timezone=zoneinfo.ZoneInfo("America/New_York"))
    text = logged_in.get("/health/").text
    assert "Times shown in America/New_York" in text
    assert local.strftime("%Y-%m-%d %H:%M") + " E" in text  # EST or EDT


@pytest.mark.django_db
def test_the_burn_rate_comes_from_stored_activity_before_the_log_has_two_entries(logged_in, configured):
    key = make_key()
    seed(key, 1)
    today = timezone.now().date()
    Activity.objects.bulk_create(
        Activity(date=today - timedelta(days=back), api_key_hash=key.hash, model="m", endpoint_id="e", usage=4.0)
        for back in range(1, 11)
    )
    response = logged_in.get("/financial/")
    rates = [(w, t.strip()) for w, t in re.findall(r'<dd data-window="(\d+)">([^<]+)', response.text)]
    assert rates == [("1", "$4.00/day"), ("7", "$4.00/day"), ("30", "$1.33/day")]
    assert "(from stored activity, last 30 days)" in response.text  # the source and span, not "30 days" alone
    assert "22.5 days" in response.text  # 90 remaining / 4.0
    assert "Burn rate unknown" not in response.text
    assert "$4.00/day" in logged_in.get("/health/").text


# --- empty and broken states -----------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_key_every_page_says_how_to_configure_one(logged_in, settings):
    settings.OPENROUTER_API_KEY = ""
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    for url in PAGES:
        text = logged_in.get(url).text
        assert "OPENROUTER_API_KEY not set" in text, url
        assert ".env" in text


@pytest.mark.django_db
def test_no_data_yet_says_to_check_now(logged_in, configured):
    health = logged_in.get("/health/").text
    assert 'id="state-no-data"' in health
    assert "No data yet" in health
    financial = logged_in.get("/financial/").text
    assert "No data yet" in financial
    assert "The account balance is unknown" in financial
    assert "No per-model activity" in financial
    assert "No key has been checked yet" in logged_in.get("/alerts/").text


@pytest.mark.django_db
def test_one_entry_says_the_burn_rate_needs_two(logged_in, configured):
    seed(make_key(), 1)
    health = logged_in.get("/health/").text
    assert "unknown (need readings over at least 1 hour)" in health
    financial = logged_in.get("/financial/").text
    assert "Burn rate unknown (need readings over at least 1 hour)" in financial
    assert financial.count('unknown <span class="tile-note">(need readings over at least 1 hour)') == 3
    assert 'id="balance-chart"' in financial  # one point still draws


@pytest.mark.django_db
def test_a_failed_last_check_shows_the_error_and_what_to_do(logged_in, configured):
    key = make_key()
    seed(key, 3, end=timezone.now() - timedelta(hours=1))
    CreditLog.objects.create(key=key, ok=False, error="OpenRouter API error (401): key invalid", http_status=401)
    text = logged_in.get("/health/").text
    assert "The last check failed" in text
    assert "OpenRouter API error (401): key invalid" in text
    assert 'create a new one at <a href="https://openrouter.ai/keys"' in text
    assert ">failed<" in text
    assert "$89.00" in text  # the last good figures stay on show
    assert ">CRITICAL<" in text  # a rejected key: the service using it fails too


@pytest.mark.django_db
def test_an_uncapped_key_without_management_key_says_the_balance_is_unknown(logged_in, configured):
    key = make_key(limit=None)
    seed(key, 3, limit=None, account=False)
    health = logged_in.get("/health/").text
    assert "Balance unknown" in health
    assert "OPENROUTER_MANAGEMENT_KEY" in health
    financial = logged_in.get("/financial/").text
    assert 'data-state="balance-unknown"' in financial
    assert 'id="balance-chart"' not in financial


# --- actions -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_check_now_queues_the_job_shows_it_pending_then_its_result(logged_in, sim, empty_queue):
    response = logged_in.post("/health/check-now/", follow=True)
    assert response.redirect_chain == [("/health/", 302)]
    assert not CreditLog.objects.exists()  # the page never waits on OpenRouter
    assert "waiting for the worker" in response.text
    assert 'id="check-pending"' in response.text and "js/health.js" in response.text

    [task] = run_queued()
    assert (task["func"], task["success"]) == ("monitoring.tasks.monitor_job", True)
    log = CreditLog.objects.get()
    assert log.ok and log.remaining == pytest.approx(45.23)
    response = logged_in.get("/health/")
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert messages == [("success", f"Check finished: OK: {log.key.display_name}: Credits OK")]
    assert 'id="check-pending"' not in response.text
    assert "$45.23" in response.text
    assert not list(logged_in.get("/health/").context["messages"])  # said once


@pytest.mark.django_db
def test_check_now_reports_a_failure_and_records_it(logged_in, sim, empty_queue):
    sim.set_failure("http401")
    logged_in.post("/health/check-now/")
    run_queued()
    response = logged_in.get("/health/")
    log = CreditLog.objects.get()
    assert not log.ok and log.http_status == 401
    [message] = response.context["messages"]
    assert message.level_tag == "error" and str(message).startswith("Check finished: ")
    assert "The last check failed" in response.text


@pytest.mark.django_db
def test_check_now_without_a_worker_says_how_to_start_one(logged_in, sim, empty_queue):
    logged_in.post("/health/check-now/")
    session = logged_in.session
    queued = session["check_now"]
    queued["queued_at"] = (timezone.now() - timedelta(seconds=45)).isoformat()  # as if 45 s went by
    session["check_now"] = queued
    session.save()
    text = logged_in.get("/health/").text
    assert "start the worker: <code>python manage.py qcluster</code>" in text
    assert 'data-reload-seconds="30"' in text


@pytest.mark.django_db
def test_check_now_while_a_run_holds_the_lease_queues_nothing(logged_in, sim, empty_queue):
    assert acquire_lease(LEASE_NAME, "a-running-worker")
    response = logged_in.post("/health/check-now/", follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "A check is already running: its result shows here when it ends."
    ]
    assert run_queued() == []


@pytest.mark.django_db
@pytest.mark.parametrize("url", POSTS)
def test_actions_refuse_get(logged_in, url):
    assert logged_in.get(url).status_code == 405


@pytest.fixture
def open_alert():
    key = make_key()
    return Alert.objects.create(key=key, condition=Alert.BALANCE, level=Level.WARNING, message="Credits low: $6.50")


@pytest.mark.django_db
def test_an_alert_can_be_acknowledged(logged_in, configured, open_alert):
    page = logged_in.get("/alerts/").text
    assert f'action="/alerts/{open_alert.pk}/acknowledge/"' in page
    response = logged_in.post(f"/alerts/{open_alert.pk}/acknowledge/", follow=True)
    open_alert.refresh_from_db()
    assert open_alert.acknowledged_at is not None
    assert open_alert.acknowledged_by == "alice"
    assert AlertEvent.objects.filter(alert=open_alert, kind=AlertEvent.ACKNOWLEDGED, user="alice").exists()
    assert "Acknowledged: Credits low: $6.50" in [str(m) for m in response.context["messages"]][0]
    assert "acknowledged by alice" in response.text


@pytest.mark.django_db
def test_an_alert_can_be_snoozed_for_a_chosen_time(logged_in, configured, open_alert):
    before = timezone.now()
    response = logged_in.post(f"/alerts/{open_alert.pk}/snooze/", {"hours": "8"}, follow=True)
    open_alert.refresh_from_db()
    assert before + timedelta(hours=8) <= open_alert.snoozed_until <= timezone.now() + timedelta(hours=8)
    assert AlertEvent.objects.filter(alert=open_alert, kind=AlertEvent.SNOOZED).count() == 1
    assert "Snoozed for 8 hours" in str(list(response.context["messages"])[0])


@pytest.mark.django_db
def test_an_acknowledgement_and_a_snooze_can_be_undone(logged_in, configured, open_alert):
    logged_in.post(f"/alerts/{open_alert.pk}/acknowledge/")
    logged_in.post(f"/alerts/{open_alert.pk}/snooze/", {"hours": "8"})
    page = logged_in.get("/alerts/").text
    assert "is-acknowledged" in page and "is-snoozed" in page  # they look different from an open alert
    assert f'action="/alerts/{open_alert.pk}/unacknowledge/"' in page
    assert f'action="/alerts/{open_alert.pk}/unsnooze/"' in page

    response = logged_in.post(f"/alerts/{open_alert.pk}/unacknowledge/", follow=True)
    message = list(response.context["messages"])[0]
    assert "Acknowledgement withdrawn" in str(message) and message.level_tag == "warning"  # the alert's WARNING
    response = logged_in.post(f"/alerts/{open_alert.pk}/unsnooze/", follow=True)
    assert "Snooze ended" in str(list(response.context["messages"])[0])
    open_alert.refresh_from_db()
    assert open_alert.acknowledged_at is None and open_alert.snoozed_until is None
    kinds = list(AlertEvent.objects.filter(alert=open_alert).values_list("kind", flat=True))
    assert kinds == [AlertEvent.UNSNOOZED, AlertEvent.UNACKNOWLEDGED, AlertEvent.SNOOZED, AlertEvent.ACKNOWLEDGED]
    assert "is-acknowledged" not in response.text and "is-snoozed" not in response.text
    again = logged_in.post(f"/alerts/{open_alert.pk}/unsnooze/", follow=True)
    assert "Not snoozed" in str(list(again.context["messages"])[0])
    assert logged_in.get(f"/alerts/{open_alert.pk}/unacknowledge/").status_code == 405


@pytest.mark.django_db
def test_an_unknown_key_without_an_alert_says_why(logged_in, configured, settings):
    settings.FAILURES_BEFORE_UNKNOWN = 3
    key = make_key()
    seed(key, 2)
    CreditLog.objects.create(key=key, ok=False, error="OpenRouter API error (502)", http_status=502)
    page = logged_in.get("/alerts/").text
    assert "1 of 3 failed checks before an alert" in page
    assert "every condition is within its threshold" not in page


@pytest.mark.django_db
def test_a_bad_snooze_time_is_refused_with_a_message(logged_in, configured, open_alert):
    response = logged_in.post(f"/alerts/{open_alert.pk}/snooze/", {"hours": "5"}, follow=True)
    open_alert.refresh_from_db()
    assert open_alert.snoozed_until is None
    assert "Choose how long to snooze" in str(list(response.context["messages"])[0])


@pytest.mark.django_db
def test_a_resolved_alert_cannot_be_acknowledged(logged_in, configured, open_alert):
    open_alert.resolved_at = timezone.now()
    open_alert.save()
    response = logged_in.post(f"/alerts/{open_alert.pk}/acknowledge/", follow=True)
    open_alert.refresh_from_db()
    assert open_alert.acknowledged_at is None
    assert "already resolved" in str(list(response.context["messages"])[0])


@pytest.mark.django_db
def test_send_test_reaches_the_channel_and_shows_in_the_history(logged_in, configured, webhook_receiver):
    configured.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    response = logged_in.post("/alerts/send-test/", follow=True)
    assert len(webhook_receiver.received) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.SENT
    assert "Test notification sent to 1 channel" in str(list(response.context["messages"])[0])
    assert "test notification" in response.text
    assert delivery.channel in response.text


@pytest.mark.django_db
def test_a_failing_channel_shows_its_error(logged_in, configured, webhook_receiver):
    configured.NOTIFY_URLS = f"json://{webhook_receiver.url}/hook"
    webhook_receiver.fail = True
    response = logged_in.post("/alerts/send-test/", follow=True)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.FAILED
    assert "1 failed" in str(list(response.context["messages"])[0])
    assert ">failed<" in response.text


@pytest.mark.django_db
def test_send_test_without_channels_says_how_to_add_one(logged_in, configured):
    configured.NOTIFY_URLS = ""
    response = logged_in.post("/alerts/send-test/", follow=True)
    assert "set NOTIFY_URLS" in str(list(response.context["messages"])[0])
    assert not AlertEvent.objects.exists()


@pytest.mark.django_db
def test_alerts_show_state_thresholds_and_paginated_history_newest_first(logged_in, configured, open_alert):
    configured.OPENROUTER_CREDIT_THRESHOLD = 25.0
    seed(open_alert.key, 2, usage=90.0)
    now = timezone.now()
    AlertEvent.objects.bulk_create(
        AlertEvent(
            alert=open_alert, created=now - timedelta(minutes=i), kind=AlertEvent.REMINDER, level=1, message=f"n{i:02d}"
        )
        for i in range(30)
    )
    first = logged_in.get("/alerts/")
    text = first.text
    assert "$25.00" in text
    assert "Credits low: $9.50 remaining (threshold $25.00)" in text
    messages = re.findall(r": </?\w*>?(n\d\d)", text) or re.findall(r"(n\d\d)</td>", text)
    assert messages[:3] == ["n00", "n01", "n02"]
    assert len(messages) == 25
    second = logged_in.get("/alerts/?page=2").text
    assert re.findall(r"(n\d\d)</td>", second) == [f"n{i}" for i in range(25, 30)]


# --- bounded queries -----------------------------------------------------------------------------

QUERY_BOUND = 49  # the busiest page (Financial, range "all") runs about 46 whatever the history (2 fold new checks,
# 2 read the activity's version: the first view after a sync groups the activity, later ones read it from the
# cache), 10 of them the verdict every page shows in its tab title and header (one status.build of every key, one
# count of the keys: beyond STATUS_LIVE_KEYS the listed ones are read from their stored figures)


def seed_many(count):
    prod = make_key()
    dev = make_key("Dev Key", primary=False, limit=20.0)
    step = timedelta(minutes=30)
    seed(prod, count // 2, step=step, spend=0.001)
    seed(dev, count // 2, step=step, spend=0.0005, limit=20.0, usage=1.0)
    failed = CreditLog.objects.create(key=prod, ok=False, error="OpenRouter API error (502)", http_status=502)
    alert = Alert.objects.create(key=prod, condition=Alert.FAILURES, level=Level.UNKNOWN, message="failing")
    events = AlertEvent.objects.bulk_create(
        AlertEvent(alert=alert, kind=AlertEvent.REMINDER, level=Level.UNKNOWN, message=f"e{i}")
        for i in range(min(count, 500))
    )
    Delivery.objects.bulk_create(Delivery(event=e, channel="json://x", channel_id="x") for e in events)
    start = date.today() - timedelta(days=min(count // 10, 400))
    Activity.objects.bulk_create(
        Activity(date=start + timedelta(days=d), api_key_hash=h, model=m, endpoint_id=m, usage=1.0)
        for d in range(min(count // 10, 400))
        for h in ("", prod.hash, dev.hash)
        for m in ("a", "b", "c", "d", "e", "f", "g")
    )
    return failed


@pytest.fixture(scope="class")
def many_rows(request, django_db_setup, django_db_blocker):
    """seed_many once per row count for the whole class, in a transaction rolled back after it.

    Each test runs in a savepoint inside it (pytest-django), so every test sees the same rows.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        seed_many(request.param)
        yield request.param
        transaction.set_rollback(True)


class TestBoundedQueries:
    @pytest.mark.django_db
    @pytest.mark.parametrize("many_rows", [10, 20_000], indirect=True)
    @pytest.mark.parametrize("url", [*PAGES, "/financial/?range=all", "/financial/?range=7", "/alerts/?page=2"])
    def test_each_page_runs_a_bounded_number_of_queries(
        self, many_rows, logged_in, configured, django_assert_max_num_queries, url
    ):
        DailyFigure.objects.refresh()  # a bulk load is folded once, as `rebuildrollups` does; pages fold new rows
        with django_assert_max_num_queries(QUERY_BOUND):
            response = logged_in.get(url)
        assert response.status_code == 200


@pytest.mark.django_db
def test_health_and_alerts_with_150_keys_run_a_bounded_number_of_queries(
    logged_in, configured, django_assert_max_num_queries
):
    keys = [make_key("primary")] + [make_key(f"key-{i:03d}", primary=False) for i in range(149)]
    # One check each (so the burn rate falls back to stored activity, the most queries a card can cost).
    CreditLog.objects.bulk_create(CreditLog(key=k, usage=1.0, credit_limit=10.0, remaining=9.0) for k in keys)
    yesterday = timezone.now().date() - timedelta(days=1)
    Activity.objects.bulk_create(
        Activity(date=yesterday, api_key_hash=k.hash, model="m", endpoint_id="e", usage=0.5) for k in keys
    )
    Alert.objects.bulk_create(
        Alert(key=k, condition=Alert.BALANCE, level=Level.WARNING, message=f"low {k.name}") for k in keys
    )
    DailyFigure.objects.refresh()  # the bulk load folded once, as after `rebuildrollups`
    for url in ["/health/", "/alerts/", "/financial/"]:
        with django_assert_max_num_queries(QUERY_BOUND):
            response = logged_in.get(url)
        assert response.status_code == 200
        assert "key-148" in response.text


def test_check_now_runs_the_whole_job_in_the_worker_alerts_included(admin_client, sim, empty_queue):
    sim.set_scenario("low")
    admin_client.post("/health/check-now/")
    assert not AlertEvent.objects.exists()
    assert [task["func"] for task in run_queued()] == ["monitoring.tasks.monitor_job"]
    assert AlertEvent.objects.filter(kind=AlertEvent.OPENED).exists()
