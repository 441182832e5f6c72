"""Operator faults, tried for real: a database on a closed port, a wrong role, an unopenable SQLite file, bad
settings, no secret key with DEBUG off, a password guesser, dates out of range. Each ends in one clear line (or a
503 / 400 / 429 page), never a traceback, and nothing is lost."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from monitoring.simulator import PROD_KEY

ROOT = Path(__file__).resolve().parent.parent
API_TOKEN = "api-token-for-the-fault-tests"
METRICS_TOKEN = "metrics-token-for-the-fault-tests"
PASSWORD = "s3cret-db-pass"  # must never be printed
PG_HOST, PG_PORT = "127.0.0.1", 5432


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment minus what would decide the outcome; empty values also mask a local .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "OPENROUTER_"))}
    env.update(
        DJANGO_DEBUG="true",
        DJANGO_SECRET_KEY="",
        DATABASE_URL="",
        REDIS_URL="",
        OPENROUTER_API_KEY=PROD_KEY,
        OPENROUTER_BASE_URL="http://127.0.0.1:9/api/v1",
        CREDITMON_LOG_DIR=str(tmp_path),
        STATICFILES_BACKEND="django.contrib.staticfiles.storage.StaticFilesStorage",
    )
    env.update(extra)
    return env


def manage(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def closed_port():
    """A loopback port bound but never listening: a connection to it is refused for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def postgres_up() -> bool:
    try:
        socket.create_connection((PG_HOST, PG_PORT), timeout=2).close()
        return True
    except OSError:
        return False


# --- the database unreachable: every command says so in one line, exit 3 -------------------------

COMMANDS = [
    ("checkcredits",),
    ("monitorcredits",),
    ("credithistory",),
    ("exportcsv", "credit-log", "--skip-checks"),
    ("prunecreditlog", "--days", "60", "--skip-checks"),
    ("migrate", "--skip-checks"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_database_on_a_closed_port_is_one_line_and_exit_3(tmp_path, closed_port, command):
    env = clean_env(tmp_path, DATABASE_URL=f"postgres://creditmon:{PASSWORD}@127.0.0.1:{closed_port}/creditmon")
    done = manage(env, *command)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3, done.stderr
    assert len(lines) == 1, done.stderr
    assert "cannot connect to the database" in lines[0]
    assert f"127.0.0.1:{closed_port}/creditmon" in lines[0] and "refused" in lines[0].lower()
    assert "migrate" not in lines[0] and PASSWORD not in done.stderr + done.stdout
    assert done.stdout == ""  # not even a CSV header


def test_checkcredits_json_says_it_in_the_json(tmp_path, closed_port):
    env = clean_env(tmp_path, DATABASE_URL=f"postgres://creditmon:{PASSWORD}@127.0.0.1:{closed_port}/creditmon")
    done = manage(env, "checkcredits", "--json")
    assert done.returncode == 3
    import json

    payload = json.loads(done.stdout)
    assert payload["status"] == "UNKNOWN" and payload["exit_code"] == 3
    assert payload["error"].startswith("cannot connect to the database") and PASSWORD not in done.stdout


def test_the_worker_refuses_to_start_on_a_closed_port_in_one_line(tmp_path, closed_port):
    env = clean_env(tmp_path, DATABASE_URL=f"postgres://creditmon:{PASSWORD}@127.0.0.1:{closed_port}/creditmon")
    done = manage(env, "qcluster", timeout=60)
    assert done.returncode == 3
    assert "cannot connect to the database" in done.stderr and "Traceback" not in done.stderr


def test_a_wrong_postgres_role_is_named_not_called_unmigrated(tmp_path):
    if not postgres_up():
        pytest.skip(f"no PostgreSQL on {PG_HOST}:{PG_PORT} (CI starts one)")
    role = f"no_such_role_{uuid.uuid4().hex[:8]}"
    env = clean_env(tmp_path, DATABASE_URL=f"postgres://{role}:{PASSWORD}@{PG_HOST}:{PG_PORT}/postgres")
    for command in (("checkcredits",), ("credithistory",), ("monitorcredits",)):
        done = manage(env, *command)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 3 and len(lines) == 1, done.stderr
        assert "cannot connect to the database" in lines[0] and f'role "{role}"' in lines[0]
        assert "migrate" not in lines[0] and PASSWORD not in done.stderr


def test_an_unopenable_sqlite_file_is_named_not_called_unmigrated(tmp_path):
    path = tmp_path / "no-such-folder" / "db.sqlite3"
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{path}")
    for command in (("checkcredits",), ("credithistory",), ("monitorcredits",), ("exportcsv", "spend-by-key")):
        done = manage(env, *command, "--skip-checks") if command[0] == "exportcsv" else manage(env, *command)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 3 and len(lines) == 1, done.stderr
        assert "cannot connect to the database" in lines[0] and str(path) in lines[0]
        assert "unable to open database file" in lines[0] and "migrate" not in lines[0]
    assert not path.parent.exists()


def test_a_database_never_migrated_keeps_its_own_message(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    for command in ("checkcredits", "credithistory", "monitorcredits"):
        done = manage(env, command)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 3 and len(lines) == 1, done.stderr
        assert "the table is missing: run `python manage.py migrate`" in lines[0]
        assert "cannot connect" not in lines[0]


def test_a_postgres_database_never_migrated_keeps_its_own_message(tmp_path):
    if not postgres_up():
        pytest.skip(f"no PostgreSQL on {PG_HOST}:{PG_PORT} (CI starts one)")
    import psycopg

    name = f"creditmon_faults_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = clean_env(tmp_path, DATABASE_URL=f"postgres://postgres@{PG_HOST}:{PG_PORT}/{name}")
        done = manage(env, "credithistory")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 3 and len(lines) == 1, done.stderr
        assert "the table is missing: run `python manage.py migrate`" in lines[0]
    finally:
        with psycopg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


# --- the web: 503 with a JSON or text body, from a real gunicorn whose database is on a closed port -------


def start_gunicorn(env: dict, tmp_path: Path) -> tuple[subprocess.Popen, str | None, Path]:
    """gunicorn on a free port (bind to 0); returns the process, its base URL (None if it stopped) and its log."""
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "creditmon.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
         "--workers", "1", "--bind", "127.0.0.1:0",
         "--no-control-socket", "--timeout", "30"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if found := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text()):
            return proc, found.group(1), log
        time.sleep(0.2)
    return proc, None, log


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_machine_endpoints_answer_503_when_the_database_is_down(tmp_path, closed_port):
    env = clean_env(
        tmp_path,
        DATABASE_URL=f"postgres://creditmon:{PASSWORD}@127.0.0.1:{closed_port}/creditmon",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="a-secret-for-the-fault-tests-" + uuid.uuid4().hex,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        API_TOKEN=API_TOKEN,
        METRICS_TOKEN=METRICS_TOKEN,
    )
    proc, base, log = start_gunicorn(env, tmp_path)
    try:
        assert base, log.read_text()
        api = {"Authorization": f"Bearer {API_TOKEN}"}
        for path in ("/api/status/", "/api/history/?days=7"):
            response = requests.get(base + path, headers=api, timeout=20)
            assert response.status_code == 503, (path, response.text[:300])
            assert response.headers["Content-Type"].startswith("application/json")
            assert "database" in response.json()["error"]
        metrics = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=20)
        assert metrics.status_code == 503 and metrics.headers["Content-Type"].startswith("text/plain")
        assert "database" in metrics.text
        health = requests.get(base + "/healthz", timeout=20)
        assert health.status_code == 503 and health.json()["status"] == "error"
        for body in (metrics.text, health.text, response.text):
            assert "<html" not in body.lower() and "Traceback" not in body and PASSWORD not in body
            assert str(closed_port) not in body  # the address is for the operator's log, not for callers
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text() and PASSWORD not in log.read_text()


# --- settings validated at start-up; no start on the published secret key ----------------------------------


def test_bad_settings_are_one_line_each_naming_the_variable(tmp_path):
    env = clean_env(
        tmp_path,
        CHECK_INTERVAL_MINUTES="6h",
        OPENROUTER_CREDIT_THRESHOLD="$10",
        DATABASE_URL=f"postgress://creditmon:{PASSWORD}@127.0.0.1:5432/creditmon",
        OPENROUTER_BASE_URL="openrouter.ai/api/v1",
        OPENROUTER_TIMEOUT="-5",
        LOGIN_FAILURE_LIMIT="0",
    )
    done = manage(env, "checkcredits")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr and done.stdout == ""
    expected = {
        "CHECK_INTERVAL_MINUTES": "whole number",
        "OPENROUTER_CREDIT_THRESHOLD": "number",
        "DATABASE_URL": "postgres://",
        "OPENROUTER_BASE_URL": "URL",
        "OPENROUTER_TIMEOUT": "at least",
        "LOGIN_FAILURE_LIMIT": "at least 1",
    }
    assert len(lines) == len(expected), done.stderr
    for name, expects in expected.items():
        (line,) = [line for line in lines if line.startswith(f"creditmon: {name}")]
        assert "expected" in line and expects in line, line


def test_good_settings_start(tmp_path):
    done = manage(clean_env(tmp_path, CHECK_INTERVAL_MINUTES="30", OPENROUTER_CREDIT_THRESHOLD="12.5"), "check")
    assert done.returncode == 0, done.stderr


def test_no_secret_key_with_debug_off_refuses_to_start_in_one_line(tmp_path):
    env = clean_env(tmp_path, DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="creditmon.example.com")
    for args in (("check",), ("checkcredits",), ("migrate", "--check")):
        done = manage(env, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 3 and len(lines) == 1, done.stderr
        assert "DJANGO_SECRET_KEY" in lines[0] and "Traceback" not in done.stderr


def test_no_secret_key_with_debug_off_stops_gunicorn_instead_of_serving(tmp_path):
    env = clean_env(tmp_path, DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    proc, base, log = start_gunicorn(env, tmp_path)
    try:
        proc.wait(timeout=30)  # gunicorn halts ("Worker failed to boot") instead of respawning the worker
    finally:
        stop(proc)
    text = log.read_text()
    assert proc.returncode == 3 and "DJANGO_SECRET_KEY is not set" in text and "Traceback" not in text


def test_check_deploy_fails_on_the_development_key(tmp_path, settings):
    env = clean_env(
        tmp_path,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=settings.DEVELOPMENT_SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="creditmon.example.com",
        DJANGO_SECURE_SSL_REDIRECT="true",
        DJANGO_HSTS_SECONDS="31536000",
    )
    done = manage(env, "check", "--deploy")
    assert done.returncode != 0 and "monitoring.E001" in done.stderr and "DJANGO_SECRET_KEY" in done.stderr
    env["DJANGO_SECRET_KEY"] = "a-real-random-key-" + uuid.uuid4().hex * 2
    done = manage(env, "check", "--deploy")
    assert "monitoring.E001" not in done.stderr + done.stdout


# --- login throttling ---------------------------------------------------------------------------------------


@pytest.fixture
def alice(django_user_model):
    django_user_model.objects.create_user("bob", password="bob's long passphrase")
    return django_user_model.objects.create_superuser("alice", "alice@example.org", "correct horse battery staple")


def post_login(client, path: str, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_ten_wrong_passwords_lock_out_and_say_so_then_the_right_one_works(client, alice, settings, path):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=3)
    answers = [post_login(client, path, "alice", f"guess-{n}") for n in range(10)]
    statuses = [a.status_code for a in answers]
    assert statuses[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert statuses[settings.AXES_FAILURE_LIMIT - 1 :] == [429] * (11 - settings.AXES_FAILURE_LIMIT)
    page = answers[-1].content.decode()
    assert "Too many failed logins" in page and "alice" in page and "3 seconds" in page
    assert "<script" not in page and "style=" not in page and "<style" not in page  # the strict CSP holds
    assert "script-src 'self'" in answers[-1]["Content-Security-Policy"]  # the admin's login has it too
    # Locked: even the right password is refused from that address...
    assert post_login(client, path, "alice", "correct horse battery staple").status_code == 429
    assert "_auth_user_id" not in client.session
    # ...but another user from the same address, or alice from another address, is not locked out.
    assert post_login(client, "/accounts/login/", "bob", "bob's long passphrase").status_code == 302
    client.logout()
    assert post_login(client, path, "alice", "correct horse battery staple", address="192.0.2.7").status_code == 302
    client.logout()
    time.sleep(3.5)  # the cool-off passes
    response = post_login(client, path, "alice", "correct horse battery staple")
    assert response.status_code == 302
    assert client.get("/health/").status_code == 200


def test_behind_a_proxy_a_forged_forwarded_for_does_not_reset_the_count(client, alice, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # DJANGO_BEHIND_PROXY=true
    statuses = [
        client.post(
            "/accounts/login/",
            {"username": "alice", "password": f"guess-{n}"},
            REMOTE_ADDR="10.0.0.2",  # the proxy
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.9",  # forged first part, the proxy's own last
        ).status_code
        for n in range(10)
    ]
    assert statuses[-1] == 429 and statuses.count(429) == 11 - settings.AXES_FAILURE_LIMIT
    other = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "correct horse battery staple"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.10",
    )
    assert other.status_code == 302  # another client behind the same proxy is not locked out


def test_a_wrong_password_before_the_limit_is_the_usual_message(client, alice):
    response = post_login(client, "/accounts/login/", "alice", "nope")
    assert response.status_code == 200 and "did not match" in response.content.decode()


def test_the_test_client_login_still_works(client, alice):
    assert client.login(username="alice", password="correct horse battery staple")
    assert client.get("/health/").status_code == 200


# --- dates out of range: a 400, or a one-line CLI error ---------------------------------------------------


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    "query",
    ["start=2026-01-01&end=9999-12-31", "start=0001-01-01&end=2026-01-01", "days=1e9", "days=nan", "end=9999-12-31"],
)
def test_out_of_range_dates_are_a_400_on_the_api_and_the_exports(logged_in, query):
    response = logged_in.get(f"/api/history/?{query}")
    assert response.status_code == 400 and response.json()["error"]
    for export in ("credit-log", "spend-by-model", "spend-by-key"):
        response = logged_in.get(f"/export/{export}.csv?{query}")
        assert response.status_code == 400, (export, query)
        assert response["Content-Type"].startswith("text/plain") and len(response.content.decode().splitlines()) == 1


def test_the_range_message_says_which_dates_work(logged_in):
    response = logged_in.get("/api/history/?start=2026-01-01&end=9999-12-31")
    assert "2000-01-01" in response.json()["error"] and "2999-12-31" in response.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ("exportcsv", "credit-log", "--start", "2026-01-01", "--end", "9999-12-31"),
        ("exportcsv", "credit-log", "--days", "1e9"),
        ("credithistory", "--days", "1e9"),
        ("credithistory", "--days", "nan"),
    ],
)
def test_out_of_range_dates_are_a_command_error(args):
    with pytest.raises(CommandError):
        call_command(*args)


def test_out_of_range_dates_on_the_command_line_are_one_line(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for args in (("exportcsv", "credit-log", "--start", "2026-01-01", "--end", "9999-12-31"), ("credithistory",
                 "--days", "1e9")):  # fmt: skip
        done = manage(env, *args, "--skip-checks") if args[0] == "exportcsv" else manage(env, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith("CommandError: "), done.stderr


def test_make_run_stops_in_one_line_when_the_database_is_down(tmp_path, closed_port):
    env = clean_env(tmp_path, DATABASE_URL=f"postgres://creditmon:{PASSWORD}@127.0.0.1:{closed_port}/creditmon")
    done = manage(env, "runapp", "--port", "0")
    assert done.returncode == 3 and "Traceback" not in done.stderr and PASSWORD not in done.stderr
    assert "cannot connect to the database" in done.stderr and "nothing started" in done.stderr
