"""The account-wide view: every key through GET /keys, spend by model through GET /activity (real HTTP)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring import monitor, status
from monitoring.account import FINAL_AFTER_DAYS, sync_activity
from monitoring.models import Activity, ApiKey, CreditLog, Level
from monitoring.monitor import LISTING_LABEL, record_listed_keys
from monitoring.openrouter import key_hash
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY, iso, parse_iso

PROD, DEV, MGMT = key_hash(PROD_KEY), key_hash(DEV_KEY), key_hash(MANAGEMENT_KEY)


def same_day_base(minutes: int = 60) -> datetime:
    """Now, or earlier today, so that `minutes` later is still today (UTC): the simulator's own clock
    decides which days /activity serves, and a run past midnight would ask for a day it does not serve yet."""
    now = timezone.now()
    midnight = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return min(now, midnight - timedelta(minutes=minutes + 1))


@pytest.fixture
def management(sim, settings):
    settings.OPENROUTER_MANAGEMENT_KEY = MANAGEMENT_KEY
    return sim


def served(sim, api_key_hash: str | None = None, day=None) -> list[dict]:
    """What the simulator serves on /activity, fetched over HTTP without our client."""
    params = {k: v for k, v in {"api_key_hash": api_key_hash, "date": day and day.isoformat()}.items() if v}
    response = requests.get(
        f"{sim.url}/activity", params=params, headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"}, timeout=5
    )
    assert response.status_code == 200
    return response.json()["data"]


def stored(api_key_hash: str) -> dict[tuple, Activity]:
    rows = Activity.objects.filter(api_key_hash=api_key_hash)
    return {(row.date.isoformat(), row.model, row.endpoint_id): row for row in rows}


def run(now):
    """One monitoring run's data part: check every key, then sync the activity."""
    statuses = monitor.check_all(now=now)
    written = sync_activity(now)
    return statuses, written


def activity_requests(sim) -> list[dict]:
    return [r for r in sim.requests if r["path"].endswith("/activity")]


def test_it_lists_every_key_and_logs_each_once(management, db):
    now = same_day_base()
    statuses = monitor.check_all(now=now)

    assert len(statuses) == 2
    dev = ApiKey.objects.get(hash=DEV)
    assert (dev.source, dev.name, dev.label) == (ApiKey.SOURCE_LISTED, "Dev Key", "sk-or-v1-sim...key")
    assert dev.credit_limit == 20.0
    prod = ApiKey.objects.get(hash=PROD)
    assert (prod.source, prod.name) == (ApiKey.SOURCE_CONFIGURED, "Production Key")  # named from the listing
    assert CreditLog.objects.filter(key=prod).count() == 1  # checked directly, not logged twice
    log = CreditLog.objects.get(key=dev)
    assert (log.usage, log.credit_limit, log.limit_remaining) == (3.10, 20.0, 16.9)
    assert log.remaining == 16.9  # the tighter of the key's 16.90 and the account's 69.50
    assert (log.account_credits, log.account_usage, log.account_balance) == (250.0, 180.5, 69.5)
    assert DEV in log.raw_response
    dev_status = next(s for s in statuses if s.key == dev)
    assert dev_status.level == Level.OK
    assert dev_status.remaining == 16.9


def test_the_management_key_appears_nowhere(management, db):
    now = same_day_base()
    run(now)

    assert not ApiKey.objects.filter(hash=MGMT).exists()
    assert not Activity.objects.filter(api_key_hash=MGMT).exists()
    for log in CreditLog.objects.all():
        assert MANAGEMENT_KEY not in f"{log.raw_response}{log.error}{log.label}"
    assert all(MANAGEMENT_KEY not in str(r["headers"]) for r in management.requests)


def test_it_pages_through_150_keys(management, db):
    management.set_scenario("many-keys")
    statuses = monitor.check_all(now=timezone.now())

    pages = [r["query"].get("offset") for r in management.requests if r["path"].endswith("/keys")]
    assert pages == ["0", "100"]
    # 152 inference keys minus key-013 (disabled) and key-137 (expired).
    assert len(statuses) == 150
    assert ApiKey.objects.count() == 150
    assert CreditLog.objects.successful().count() == 150
    assert not ApiKey.objects.filter(name__in=["key-013", "key-137"]).exists()
    key = ApiKey.objects.get(name="key-042")
    log = CreditLog.objects.get(key=key)
    assert (log.usage, log.credit_limit, log.limit_remaining) == (round(0.37 * (42 % 11), 2), 10.0, 10.0 - 3.33)


def test_disabled_and_expired_keys_are_listed_on_request(management, db, settings):
    settings.OPENROUTER_LIST_DISABLED_KEYS = True
    management.set_scenario("many-keys")
    statuses = monitor.check_all(now=timezone.now())

    assert len(statuses) == 152
    assert ApiKey.objects.get(name="key-013").disabled
    assert ApiKey.objects.get(name="key-137").expires_at < timezone.now()


def test_a_failed_listing_is_recorded_and_unknown(management, db):
    now = same_day_base()
    management.set_failure("http500")
    assert record_listed_keys(now, set(), None, "account balance unavailable") is None
    statuses = status.build(now)

    assert len(statuses) == 1
    assert statuses[0].level == Level.UNKNOWN and statuses[0].name == LISTING_LABEL
    log = CreditLog.objects.get()
    assert (log.ok, log.key, log.label, log.http_status) == (False, None, LISTING_LABEL, 500)
    assert "OpenRouter API error (500)" in log.error
    assert MANAGEMENT_KEY not in log.error


def test_the_first_run_backfills_30_days_per_key_and_account_wide(management, db):
    now = same_day_base()
    today = now.astimezone(UTC).date()
    _, written = run(now)

    for target, hash_ in (("account", ""), ("prod", PROD), ("dev", DEV)):
        rows = stored(hash_)
        expected = {(r["date"], r["model"], r["endpoint_id"]): r for r in served(management, hash_ or None)}
        assert rows.keys() == expected.keys(), target
        for slot, row in rows.items():
            assert row.usage == pytest.approx(expected[slot]["usage"]), slot
            assert row.requests == expected[slot]["requests"]
            assert row.prompt_tokens == expected[slot]["prompt_tokens"]
            assert row.provider_name == expected[slot]["provider_name"]
    assert written == Activity.objects.count()
    dates = Activity.objects.values_list("date", flat=True)
    # The simulator keeps 45 days; the API serves (and we store) the last 30 completed days.
    assert min(dates) == today - timedelta(days=30)
    assert max(dates) == today - timedelta(days=1)
    assert not Activity.objects.filter(final=True, date__gte=today - timedelta(days=FINAL_AFTER_DAYS)).exists()
    assert not Activity.objects.filter(final=False, date__lt=today - timedelta(days=FINAL_AFTER_DAYS)).exists()


def test_spend_by_model_and_by_key_matches_what_openrouter_serves(management, db):
    run(timezone.now())

    by_model = defaultdict(float)
    for row in served(management):
        by_model[row["model"]] += row["usage"]
    stored_by_model = {r["model"]: r["spend"] for r in Activity.objects.account_wide().totals_by("model")}
    assert stored_by_model == pytest.approx(dict(by_model))
    assert len(stored_by_model) == 4
    by_key = {r["api_key_hash"]: r["spend"] for r in Activity.objects.per_key().totals_by("api_key_hash")}
    assert by_key[PROD] == pytest.approx(sum(r["usage"] for r in served(management, PROD)))
    assert by_key[DEV] == pytest.approx(sum(r["usage"] for r in served(management, DEV)))
    # Production spends 3.20 a day, Dev 0.40 (each day within 15%).
    assert 30 * 3.2 * 0.85 <= by_key[PROD] <= 30 * 3.2 * 1.15
    assert sum(by_key.values()) == pytest.approx(sum(by_model.values()))


def test_the_burn_rate_is_known_after_the_first_run(management, db, settings):
    now = same_day_base()
    today = now.astimezone(UTC).date()
    statuses, _ = run(now)
    prod = ApiKey.objects.get(hash=PROD)
    window = settings.BURN_RATE_WINDOW_DAYS
    samples = CreditLog.objects.usage_samples(prod, now - timedelta(days=window))
    assert len(samples) == 1  # one check: the log alone cannot tell a rate

    week = [today - timedelta(days=n) for n in range(1, window + 1)]
    expected = sum(sum(r["usage"] for r in served(management, PROD, day)) for day in week) / window
    prod_status = status.build(now).for_key(prod)
    assert (prod_status.burn.source, prod_status.burn_rate) == ("activity", pytest.approx(expected))
    assert 3.2 * 0.85 <= expected <= 3.2 * 1.15


def test_the_first_run_forecasts_from_the_backfilled_activity(management, db):
    now = same_day_base()
    statuses, _ = run(now)
    prod = next(s for s in statuses if s.key.hash == PROD)
    assert prod.burn_rate is None  # checked before the activity was synced

    prod = status.build(now).for_key(prod.key)  # as the scheduled run builds it after the sync
    rate = (
        sum(sum(r["usage"] for r in served(management, PROD, now.date() - timedelta(days=n))) for n in range(1, 8)) / 7
    )
    assert prod.burn.source == "activity"
    assert prod.burn_rate == pytest.approx(rate)
    assert prod.days_left == pytest.approx(45.23 / rate)
    assert prod.exhaustion_date == now + timedelta(days=prod.days_left)


def test_the_log_based_burn_rate_wins_once_there_are_two_checks(management, db):
    now = same_day_base()
    run(now)
    management.set_key(PROD_KEY, usage=58.77)  # $4 spent in the next 12 hours
    later = now + timedelta(hours=12)
    monitor.check_all(now=later)
    prod = status.build(later).for_key(ApiKey.objects.get(hash=PROD))

    assert (prod.burn.source, prod.burn_rate) == ("checks", pytest.approx(8.0))
    assert prod.burn.window_text == "over the last 12.0 hours"


def test_a_key_never_synced_has_no_activity_burn_rate(management, db):
    monitor.check_all(now=timezone.now())
    dev = status.build(timezone.now()).for_key(ApiKey.objects.get(hash=DEV))
    assert dev.burn_rate is None and dev.burn_note == "unknown (need readings over at least 1 hour)"


def test_rerunning_a_fetch_stores_nothing_twice(management, db):
    now = same_day_base()
    today = now.astimezone(UTC).date()
    run(now)
    count = Activity.objects.count()
    recent = Activity.objects.filter(api_key_hash="", date=today - timedelta(days=1)).first()
    old = Activity.objects.filter(api_key_hash="", date=today - timedelta(days=20)).first()
    right_recent, right_old = recent.usage, old.usage
    Activity.objects.filter(pk__in=[recent.pk, old.pk]).update(usage=999.0)

    later = now + timedelta(minutes=5)
    run(later)
    assert Activity.objects.count() == count
    recent.refresh_from_db()
    old.refresh_from_db()
    assert recent.usage == pytest.approx(right_recent)  # not final: re-read and updated
    assert recent.fetched_at == later
    assert old.usage == 999.0  # final: never fetched again on a normal run

    written = sync_activity(later, backfill=True)
    old.refresh_from_db()
    assert old.usage == pytest.approx(right_old)  # --backfill re-reads all 30 days
    assert written == count
    assert Activity.objects.count() == count


def test_a_normal_run_is_a_few_requests_not_30_per_key(management, db):
    management.set_scenario("many-keys")
    now = same_day_base()
    run(now)
    first = activity_requests(management)
    # The backfill: one request per key the listing says was used within the 30 days, one account-wide.
    used = [k for k in management.state()["keys"] if not k["is_management_key"] and k["last_used_at"]]
    assert 50 < len(used) < 150 and len(first) == len(used) + 1
    assert all("date" not in r["query"] for r in first)

    management.requests.clear()
    run(now + timedelta(minutes=30))
    second = activity_requests(management)
    # Keys whose usage did not move are skipped; only the days not final yet are re-read.
    assert 0 < len(second) <= 3 * (FINAL_AFTER_DAYS + 1)
    assert all("date" in r["query"] for r in second)


def test_a_key_that_spends_again_is_refetched_and_a_new_key_gets_its_history(management, db):
    now = same_day_base()
    today = now.astimezone(UTC).date()
    run(now)
    management.set_key(DEV_KEY, usage=3.5)
    new_token = "sk-or-v1-sim-brand-new-key"
    management.add_key(new_token, "New Key", activity_per_day=2.0, limit=50.0)
    management.requests.clear()

    run(now + timedelta(minutes=30))
    queries = [r["query"] for r in activity_requests(management)]
    new_hash = key_hash(new_token)
    assert [q for q in queries if q.get("api_key_hash") == new_hash] == [{"api_key_hash": new_hash}]
    dev_days = sorted(q["date"] for q in queries if q.get("api_key_hash") == DEV)
    assert dev_days == sorted((today - timedelta(days=n)).isoformat() for n in range(1, FINAL_AFTER_DAYS + 1))
    assert not [q for q in queries if q.get("api_key_hash") == PROD and "date" not in q]
    assert stored(new_hash).keys() == {(r["date"], r["model"], r["endpoint_id"]) for r in served(management, new_hash)}
    assert ApiKey.objects.get(hash=new_hash).name == "New Key"


def test_a_key_never_used_or_not_within_the_window_is_not_asked_for_its_activity(management, db):
    now = same_day_base()
    for token, name, last_used in [
        ("sk-or-v1-sim-never-used-key", "Never used", None),
        ("sk-or-v1-sim-used-long-ago", "Long ago", iso(now - timedelta(days=40))),
        ("sk-or-v1-sim-used-yesterday", "Yesterday", iso(now - timedelta(days=1))),
    ]:
        management.add_key(token, name, limit=10.0, last_used_at=last_used)
    run(now)
    asked = {r["query"].get("api_key_hash") for r in activity_requests(management)}
    assert key_hash("sk-or-v1-sim-used-yesterday") in asked
    assert not asked & {key_hash("sk-or-v1-sim-never-used-key"), key_hash("sk-or-v1-sim-used-long-ago")}
    assert PROD in asked, "a configured key is asked whatever the listing says"
    key = ApiKey.objects.get(hash=key_hash("sk-or-v1-sim-used-long-ago"))
    assert key.last_use_listed and key.last_used_at == parse_iso(iso(now - timedelta(days=40)))

    # Once it is used again, the next listing says so and its month is fetched.
    management.set_key("sk-or-v1-sim-used-long-ago", usage=2.5, activity_per_day=1.5)
    management.requests.clear()
    run(now + timedelta(minutes=30))
    asked = [r["query"] for r in activity_requests(management)]
    assert {"api_key_hash": key_hash("sk-or-v1-sim-used-long-ago")} in asked


def test_syncactivity_stores_the_activity(management, db):
    from io import StringIO

    monitor.check_all(now=timezone.now())
    out = StringIO()
    call_command("syncactivity", "--backfill", stdout=out)

    assert out.getvalue().strip() == f"{Activity.objects.count()} activity rows stored"
    assert Activity.objects.filter(api_key_hash=PROD).exists()


def test_syncactivity_needs_a_management_key(sim, db):
    with pytest.raises(CommandError, match="OPENROUTER_MANAGEMENT_KEY not set"):
        call_command("syncactivity")


def test_syncactivity_reports_an_api_failure(management, db):
    management.set_failure("http403")
    with pytest.raises(CommandError, match=r"OpenRouter API error \(403\)"):
        call_command("syncactivity")


def test_a_failed_sync_keeps_what_was_stored_and_catches_up_next_run(management, db):
    from monitoring.openrouter import OpenRouterError

    now = same_day_base()
    run(now)
    count = Activity.objects.count()
    management.set_failure("http500")
    with pytest.raises(OpenRouterError, match=r"\(500\)"):
        sync_activity(now + timedelta(minutes=5))
    assert Activity.objects.count() == count

    management.set_failure(None)
    management.requests.clear()
    later = now + timedelta(minutes=10)
    run(later)
    assert Activity.objects.count() == count
    assert Activity.objects.filter(api_key_hash="", fetched_at=later).exists()
