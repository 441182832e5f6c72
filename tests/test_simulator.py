"""The simulated OpenRouter: schema completeness (via the official SDK), semantics, failure modes.

No Django and no database here: the simulator is stdlib only.
"""

from __future__ import annotations

import json
import math
import socket
import time
import warnings
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from openrouter import OpenRouter, errors

from monitoring.simulator import (
    DEV_KEY,
    FAILURES,
    MANAGEMENT_KEY,
    PROD_KEY,
    SCENARIOS,
    Simulator,
    key_hash,
)

NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


class Clock:
    """A settable clock so drift and activity windows are exact."""

    def __init__(self, now: datetime) -> None:
        self.value = now

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture(scope="module")
def server(clock):
    s = Simulator("management", now=clock).start()
    yield s
    s.stop()


@pytest.fixture
def osim(server, clock):
    """The module's simulator reset to stable `management` figures with fast failure timings."""
    clock.value = NOW
    server.set_scenario("management")
    server.delay, server.drip_interval, server.huge_bytes = 0.3, 0.5, 20 * 1024 * 1024
    server.requests.clear()
    return server


def get(sim: Simulator, path: str, token: str | None = PROD_KEY, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(sim.url + path, headers=headers, params=params, timeout=5)


def sdk(sim: Simulator, token: str) -> OpenRouter:
    return OpenRouter(api_key=token, server_url=sim.url, retry_config=None, timeout_ms=5000)


# ---- schema completeness: the official SDK parses every endpoint --------------------------


@pytest.mark.parametrize("scenario", ["steady", "uncapped", "monthly"])
def test_sdk_parses_key(osim, scenario):
    osim.set_scenario(scenario)
    with sdk(osim, PROD_KEY) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        data = client.api_keys.get_current_key_metadata().data
    assert data.label == "sk-or-v1-sim...key"
    assert data.is_management_key is False
    if scenario == "uncapped":
        assert (data.limit, data.limit_remaining, data.limit_reset) == (None, None, None)
        assert data.budgets == [] and data.effective_budget is None
        assert data.usage == 54.77
    elif scenario == "monthly":
        assert data.limit_reset == "monthly" and data.limit_remaining == 37.5
        assert data.effective_budget.remaining_usd == 37.5
    else:
        assert data.limit == 100.0 and data.limit_remaining == 45.23 and data.usage == 54.77


def test_sdk_parses_credits_activity_and_keys(osim):
    with sdk(osim, MANAGEMENT_KEY) as client:
        credits = client.credits.get_credits().data
        assert (credits.total_credits, credits.total_usage) == (250.0, 180.5)
        me = client.api_keys.get_current_key_metadata().data
        assert me.is_management_key is True
        activity = client.analytics.get_user_activity(request={"date": "2026-11-24"}).data
        assert activity and {a.date_ for a in activity} == {"2026-11-24"}
        assert all(a.cached_tokens >= 0 for a in activity)
        listed = client.api_keys.list(include_disabled=True, include_expired=True).data
        assert {k.name for k in listed} == {"Production Key", "Dev Key"}
        one = client.api_keys.get(hash=key_hash(DEV_KEY)).data
        assert one.name == "Dev Key" and one.limit_remaining == 16.9


# ---- /key semantics ----------------------------------------------------------------------


def test_monthly_limit_remaining_uses_the_window(osim):
    osim.set_scenario("monthly")
    data = get(osim, "/key").json()["data"]
    assert data["usage"] == 180.0 and data["usage_monthly"] == 12.5
    assert data["limit_remaining"] == 37.5  # 50 - usage_monthly, not 50 - usage
    assert data["effective_budget"]["reset_interval"] == "monthly"
    assert data["effective_budget"]["resets_at"] == "2026-12-01T00:00:00Z"


@pytest.mark.parametrize("reset, expected", [("daily", 18.0), ("weekly", 15.0), (None, 0.0)])
def test_limit_remaining_per_reset_window(osim, reset, expected):
    osim.set_key(PROD_KEY, limit=20, limit_reset=reset, usage=30, usage_daily=2, usage_weekly=5, usage_monthly=9)
    assert get(osim, "/key").json()["data"]["limit_remaining"] == expected  # None: clamped at 0


@pytest.mark.parametrize("scenario, remaining", [("low", 4.5), ("exhausted", 0.0)])
def test_low_and_exhausted(osim, scenario, remaining):
    osim.set_scenario(scenario)
    assert get(osim, "/key").json()["data"]["limit_remaining"] == remaining


def test_usage_drifts_with_spend_and_explicit_values_are_stable(osim, clock):
    osim.set_scenario("steady")
    clock.value = NOW + timedelta(hours=12)
    data = get(osim, "/key").json()["data"]
    assert data["usage"] == pytest.approx(54.77 + 1.6)
    assert data["limit_remaining"] == pytest.approx(45.23 - 1.6)
    mgmt = get(osim, "/credits", MANAGEMENT_KEY).json()["data"]
    assert mgmt["total_usage"] == pytest.approx(180.5 + 1.8)  # (3.2 + 0.4) / 2
    osim.set_key(PROD_KEY, usage=10, spend_per_day=0)
    clock.value += timedelta(days=3)
    data = get(osim, "/key").json()["data"]
    assert data["usage"] == 10.0 and data["limit_remaining"] == 90.0
    osim.set_key(PROD_KEY, limit_remaining=12.34)  # an explicit override is reported as given
    assert get(osim, "/key").json()["data"]["limit_remaining"] == 12.34


def test_auth_errors(osim):
    r = get(osim, "/key", token=None)
    assert r.status_code == 401 and r.json() == {"error": {"code": 401, "message": "Missing Authentication header"}}
    r = get(osim, "/key", token="sk-or-v1-nope")
    assert r.status_code == 401 and r.json()["error"]["message"] == "User not found."
    osim.set_key(DEV_KEY, disabled=True)
    assert get(osim, "/key", DEV_KEY).status_code == 401
    osim.set_key(DEV_KEY, disabled=False, expires_at="2026-11-01T00:00:00Z")
    assert get(osim, "/key", DEV_KEY).status_code == 401
    osim.set_scenario("uncapped")
    assert get(osim, "/key", MANAGEMENT_KEY).status_code == 401
    assert get(osim, "/auth/key").json()["data"]["limit"] is None  # legacy alias


def test_unknown_path_is_json_404(osim):
    for path in ("/nope", "/../../x"):
        r = get(osim, path)
        assert r.status_code == 404 and r.json()["error"]["code"] == 404
    r = requests.get(osim.url.replace("/api/v1", "/other"), timeout=5)
    assert r.status_code == 404 and r.json()["error"]["code"] == 404


# ---- /credits --------------------------------------------------------------------------------


def test_credits_needs_a_management_key(osim):
    r = get(osim, "/credits", PROD_KEY)
    assert r.status_code == 403
    assert r.json() == {"error": {"code": 403, "message": "Only management keys can perform this operation"}}
    with sdk(osim, PROD_KEY) as client, pytest.raises(errors.ForbiddenResponseError):
        client.credits.get_credits()
    assert get(osim, "/credits", MANAGEMENT_KEY).json() == {"data": {"total_credits": 250.0, "total_usage": 180.5}}


def test_credits_zero_quirk(osim):
    osim.set_scenario("credits-zero-quirk")
    r = get(osim, "/credits", PROD_KEY)
    assert r.status_code == 200 and r.json() == {"data": {"total_credits": 0, "total_usage": 0}}
    assert get(osim, "/credits", MANAGEMENT_KEY).json()["data"]["total_credits"] == 250.0


# ---- /keys -----------------------------------------------------------------------------------


def test_keys_pagination_and_filters(osim):
    osim.set_scenario("many-keys")

    def names(**params):
        out, offset = [], 0
        while True:
            page = get(osim, "/keys", MANAGEMENT_KEY, offset=offset, **params).json()["data"]
            out.append(len(page))
            offset += len(page)
            if len(page) < 100:
                return out, offset

    assert names() == ([100, 50], 150)
    assert names(include_disabled="true") == ([100, 51], 151)
    assert names(include_disabled="true", include_expired="true") == ([100, 52], 152)
    all_keys = get(osim, "/keys", MANAGEMENT_KEY, include_disabled="true").json()["data"]
    all_keys += get(osim, "/keys", MANAGEMENT_KEY, include_disabled="true", offset=100).json()["data"]
    disabled = [k["name"] for k in all_keys if k["disabled"]]
    assert disabled == ["key-013"]
    with sdk(osim, MANAGEMENT_KEY) as client:
        page2 = client.api_keys.list(offset=100, include_disabled=True, include_expired=True).data
    assert len(page2) == 52


def test_keys_access_and_lookup(osim):
    assert get(osim, "/keys", PROD_KEY).status_code == 403
    item = get(osim, f"/keys/{key_hash(PROD_KEY)}", MANAGEMENT_KEY).json()["data"]
    assert item["name"] == "Production Key" and item["label"] == "sk-or-v1-sim...key"
    assert item["hash"] == key_hash(PROD_KEY) and item["limit_remaining"] == 45.23
    assert get(osim, f"/keys/{'0' * 64}", MANAGEMENT_KEY).status_code == 404


# ---- /activity -------------------------------------------------------------------------------


def test_activity_last_30_completed_days_deterministic(osim):
    first = get(osim, "/activity", MANAGEMENT_KEY).json()["data"]
    again = get(osim, "/activity", MANAGEMENT_KEY).json()["data"]
    assert first == again
    days = {r["date"] for r in first}
    today = NOW.date()
    assert days == {(today - timedelta(days=n)).isoformat() for n in range(1, 31)}
    assert {r["model"] for r in first} <= {
        "openai/gpt-4.1",
        "anthropic/claude-sonnet-4",
        "google/gemini-2.5-flash",
        "meta-llama/llama-3.3-70b-instruct",
    }
    for bad in (today.isoformat(), (today - timedelta(days=31)).isoformat(), "2026-13-01"):
        r = get(osim, "/activity", MANAGEMENT_KEY, date=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == 400
    assert get(osim, "/activity", PROD_KEY).status_code == 403


def test_activity_filtered_by_key_matches_its_spend(osim):
    day = (NOW.date() - timedelta(days=5)).isoformat()
    prod = get(osim, "/activity", MANAGEMENT_KEY, date=day, api_key_hash=key_hash(PROD_KEY)).json()["data"]
    dev = get(osim, "/activity", MANAGEMENT_KEY, date=day, api_key_hash=key_hash(DEV_KEY)).json()["data"]
    both = get(osim, "/activity", MANAGEMENT_KEY, date=day).json()["data"]
    total = {k: sum(r["usage"] for r in rows) for k, rows in (("prod", prod), ("dev", dev), ("both", both))}
    assert 3.2 * 0.85 <= total["prod"] <= 3.2 * 1.15
    assert 0.4 * 0.85 <= total["dev"] <= 0.4 * 1.15
    assert total["both"] == pytest.approx(total["prod"] + total["dev"])
    assert len({(r["model"], r["endpoint_id"]) for r in both}) == len(both)  # summed per model/endpoint
    assert all(r["cached_tokens"] <= r["prompt_tokens"] and r["requests"] >= 1 for r in both)
    assert get(osim, "/activity", MANAGEMENT_KEY, api_key_hash="f" * 64).status_code == 404


# ---- failure modes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, status",
    [
        ("http401", 401),
        ("http402", 402),
        ("http403", 403),
        ("http429", 429),
        ("http500", 500),
        ("http502", 502),
        ("http503", 503),
    ],
)
def test_http_error_failures(osim, name, status):
    osim.set_failure(name)
    r = get(osim, "/key")
    assert r.status_code == status
    assert r.json()["error"]["code"] == status and r.json()["error"]["message"]
    if status in (429, 503):
        assert r.headers["Retry-After"] == "1"
    if status == 429:
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(r.headers)
    osim.set_failure(None)
    assert get(osim, "/key").status_code == 200


def test_failure_count_then_recovers(osim):
    osim.set_failure("http500", count=2)
    assert [get(osim, "/key").status_code for _ in range(3)] == [500, 500, 200]


def test_failure_scenario_applies_to_every_request(osim):
    osim.set_scenario("http503")
    assert get(osim, "/credits", MANAGEMENT_KEY).status_code == 503
    assert get(osim, "/keys", MANAGEMENT_KEY).status_code == 503


def test_body_failures(osim):
    osim.set_failure("html")
    r = get(osim, "/key")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html") and "Cloudflare" in r.text
    osim.set_failure("malformed")
    r = get(osim, "/key")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(r.text)
    osim.set_failure("wrong-types")
    data = get(osim, "/key").json()["data"]
    assert data["usage"] == "54.77" and data["limit"] == [100.0]
    osim.set_failure("nan")
    r = get(osim, "/key")
    assert "NaN" in r.text and math.isnan(json.loads(r.text)["data"]["usage"])
    osim.set_failure("empty")
    r = get(osim, "/key")
    assert r.status_code == 200 and r.json() == {}


def test_slow(osim):
    osim.set_failure("slow")
    started = time.monotonic()
    assert get(osim, "/key").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        osim.delay = 2.0
        requests.get(osim.url + "/key", headers={"Authorization": f"Bearer {PROD_KEY}"}, timeout=0.3)


def _open_and_hang_up(sim: Simulator, nbytes: int) -> bytes:
    """Send a raw request, read a little, close early: what an impatient client does."""
    host, port = sim.host, sim.port
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(f"GET /api/v1/key HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {PROD_KEY}\r\n\r\n".encode())
        got = b""
        while len(got.partition(b"\r\n\r\n")[2]) < nbytes:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.parametrize("name", ["slow-body", "huge"])
def test_streaming_failures_survive_an_early_close(osim, name):
    osim.set_failure(name)
    osim.drip_interval = 0.05
    got = _open_and_hang_up(osim, 300_000 if name == "huge" else 1)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    lines = head.split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.lower().startswith(b"content-length")))
    if name == "huge":
        assert length > 19_000_000 and len(body) < length
    else:
        assert 0 < len(body) < length  # dripping
    time.sleep(0.2)  # let the server hit the closed socket
    osim.set_failure(None)
    assert get(osim, "/key").json()["data"]["usage"] == 54.77


def test_huge_is_valid_json_when_read_fully(osim):
    osim.huge_bytes = 200_000  # the full 20 MB is checked above for its header only
    osim.set_failure("huge")
    r = get(osim, "/key")
    assert len(r.content) > 199_000 and r.json()["data"]["usage"] == 54.77


def test_header_drip_sends_the_status_line_then_never_ends_the_headers(osim):
    osim.drip_interval = 0.05
    osim.set_failure("header-drip")
    with socket.create_connection((osim.host, osim.port), timeout=5) as s:
        s.sendall(f"GET /api/v1/key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROD_KEY}\r\n\r\n".encode())
        got, ends = b"", time.monotonic() + 1.0
        while time.monotonic() < ends:
            got += s.recv(1)
    assert got.startswith(b"HTTP/1.1 200 OK\r\nX-Drip-0: 1\r\n") and b"\r\n\r\n" not in got
    osim.set_failure(None)
    assert get(osim, "/key").status_code == 200


def test_redirect_and_echo_key_failures(osim):
    osim.set_failure("redirect")
    r = requests.get(
        osim.url + "/key", headers={"Authorization": f"Bearer {PROD_KEY}"}, allow_redirects=False, timeout=5
    )
    assert r.status_code == 302 and r.headers["Location"].startswith("https://openrouter-mirror.example:8443/")
    assert PROD_KEY in r.headers["Location"]  # the trap: a client following it would hand the key over
    osim.set_failure("echo-key")
    r = get(osim, "/key")
    assert r.status_code == 500 and "sim-prod-key" in r.json()["error"]["message"]
    assert "sk-or-v1-sim-prod-key" not in r.json()["error"]["message"]


def test_implausible_hostile_and_bad_hash_failures(osim):
    osim.set_failure("implausible")
    data = get(osim, "/key").json()["data"]
    assert data["usage"] == -500 and data["limit_remaining"] == -1e300
    assert get(osim, "/credits", MANAGEMENT_KEY).json()["data"]["total_usage"] == -500
    osim.set_failure("hostile-strings")
    data = get(osim, "/key").json()["data"]
    assert "\u0000" in data["label"] and "\n" in data["label"] and "@everyone" in data["label"]
    assert len(data["label"]) > 300 and data["limit_reset"].startswith("monthly\u0000")
    row = get(osim, "/activity", MANAGEMENT_KEY).json()["data"][0]
    assert all(len(row[f]) > 300 for f in ("model", "model_permaslug", "provider_name", "endpoint_id"))
    osim.set_failure("bad-hash")
    assert {item["hash"] for item in get(osim, "/keys", MANAGEMENT_KEY).json()["data"]} == {"z" * 70}


# ---- control API and request log ------------------------------------------------------------


def test_control_api_round_trip(osim):
    base = osim.url.replace("/api/v1", "/_sim")
    assert requests.post(f"{base}/scenario", json={"name": "low"}, timeout=5).json()["scenario"] == "low"
    assert get(osim, "/key").json()["data"]["limit_remaining"] == 4.5
    requests.post(f"{base}/key", json={"token": PROD_KEY, "usage": 99.0}, timeout=5).raise_for_status()
    assert get(osim, "/key").json()["data"]["limit_remaining"] == 1.0
    requests.post(f"{base}/account", json={"total_credits": 10, "total_usage": 9.5}, timeout=5).raise_for_status()
    assert get(osim, "/credits", MANAGEMENT_KEY).json()["data"] == {"total_credits": 10.0, "total_usage": 9.5}
    requests.post(f"{base}/failure", json={"name": "http502", "count": 1}, timeout=5).raise_for_status()
    assert get(osim, "/key").status_code == 502
    assert requests.post(f"{base}/scenario", json={"name": "bogus"}, timeout=5).status_code == 400
    new = {"token": "sk-or-v1-sim-extra-key", "name": "Extra", "limit": 5, "usage": 1}
    requests.post(f"{base}/key", json=new, timeout=5).raise_for_status()
    assert get(osim, "/key", "sk-or-v1-sim-extra-key").json()["data"]["limit_remaining"] == 4.0
    assert requests.post(f"{base}/key", json={"token": PROD_KEY, "bogus": 1}, timeout=5).status_code == 400
    state = requests.get(f"{base}/state", timeout=5).json()
    assert state["scenario"] == "low" and state["account"]["balance"] == 0.5
    assert PROD_KEY not in json.dumps(state) and MANAGEMENT_KEY not in json.dumps(state)
    log = requests.get(f"{base}/requests", timeout=5).json()["requests"]
    assert [e["path"] for e in log] == ["/api/v1/key"] * 2 + ["/api/v1/credits"] + ["/api/v1/key"] * 2


def test_request_log_redacts_the_key(osim):
    get(osim, "/key", PROD_KEY, foo="bar")
    entry = osim.requests[-1]
    assert entry["method"] == "GET" and entry["path"] == "/api/v1/key" and entry["query"] == {"foo": "bar"}
    assert entry["headers"]["Authorization"] == "Bearer <redacted:...-key>"
    assert entry["key_hash"] == key_hash(PROD_KEY)
    assert PROD_KEY not in json.dumps(osim.requests)


def test_every_scenario_loads(osim):
    assert set(FAILURES) < set(SCENARIOS)
    for name in SCENARIOS:
        osim.set_scenario(name)
        assert osim.state()["scenario"] == name
    with pytest.raises(ValueError):
        osim.set_scenario("nope")


def test_real_clock_and_port_zero():
    with Simulator() as s:
        assert s.port > 0 and s.url == f"http://127.0.0.1:{s.port}/api/v1"
        data = get(s, "/key").json()["data"]
        assert 54.77 <= data["usage"] < 54.8  # steady drifts, slowly
        latest = max(r["date"] for r in get(s, "/activity", MANAGEMENT_KEY).json()["data"])
        assert date.fromisoformat(latest) == datetime.now(UTC).date() - timedelta(days=1)


def test_stop_cuts_keep_alive_connections():
    s = Simulator("management").start()
    with requests.Session() as session:
        headers = {"Authorization": f"Bearer {PROD_KEY}"}
        assert session.get(s.url + "/key", headers=headers, timeout=5).status_code == 200
        s.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(s.url + "/key", headers=headers, timeout=5)


def test_one_model_can_run_away_in_activity_and_live_spend(osim):
    base = osim.url.replace("/api/v1", "/_sim")
    yesterday, before = NOW.date() - timedelta(days=1), NOW.date() - timedelta(days=2)
    sonnet = "anthropic/claude-sonnet-4"

    def rows(day: date) -> dict[str, dict]:
        data = get(osim, "/activity", MANAGEMENT_KEY, date=day.isoformat(), api_key_hash=key_hash(PROD_KEY))
        return {r["model"]: r for r in data.json()["data"]}

    def spend_per_day() -> float:
        return next(k for k in osim.state()["keys"] if k["name"] == "Production Key")["spend_per_day"]

    calm_yesterday, calm_before = rows(yesterday), rows(before)
    since = datetime.combine(yesterday, datetime.min.time(), tzinfo=UTC).isoformat()
    surge = {"token": PROD_KEY, "model": sonnet, "requests": 4, "tokens": 2, "since": since}
    requests.post(f"{base}/surge", json=surge, timeout=5).raise_for_status()
    hot, old = rows(yesterday), rows(before)
    assert old == calm_before  # before `since`: as it was
    calm, now = calm_yesterday[sonnet], hot[sonnet]
    assert now["requests"] == calm["requests"] * 4
    assert now["usage"] == pytest.approx(calm["usage"] * 8, abs=0.01)  # requests x tokens x price (x1)
    assert now["prompt_tokens"] / now["requests"] == pytest.approx(2 * calm["prompt_tokens"] / calm["requests"])
    assert {m: r for m, r in hot.items() if m != sonnet} == {m: r for m, r in calm_yesterday.items() if m != sonnet}
    assert spend_per_day() == pytest.approx(3.2 * 0.35 / 1.0 * 7)  # its share of the history rate, 8x - 1 more
    requests.post(f"{base}/surge", json={"token": PROD_KEY, "model": None}, timeout=5).raise_for_status()
    assert rows(yesterday) == calm_yesterday and spend_per_day() == pytest.approx(0.0)
    bad = requests.post(f"{base}/surge", json={"token": PROD_KEY, "model": "acme/nope"}, timeout=5)
    assert bad.status_code == 400 and "unknown model" in bad.json()["error"]["message"]


def test_the_runaway_model_scenario_spends_more_on_one_model(osim):
    osim.set_scenario("runaway-model")
    yesterday = (NOW.date() - timedelta(days=1)).isoformat()
    week_ago = (NOW.date() - timedelta(days=7)).isoformat()
    prod = key_hash(PROD_KEY)
    hot = get(osim, "/activity", MANAGEMENT_KEY, date=yesterday, api_key_hash=prod).json()["data"]
    calm = get(osim, "/activity", MANAGEMENT_KEY, date=week_ago, api_key_hash=prod).json()["data"]
    share = {day: next(r["usage"] for r in rows if r["model"] == "anthropic/claude-sonnet-4") / sum(
        r["usage"] for r in rows) for day, rows in (("hot", hot), ("calm", calm))}  # fmt: skip
    assert share["hot"] > 0.7 > 0.5 > share["calm"]
