"""Shared fixtures: the simulated OpenRouter over real HTTP, a real SMTP sink, a real webhook receiver."""

from __future__ import annotations

import json
import logging.config
import os
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY, Simulator

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


def pytest_configure(config):
    from django.conf import settings

    # live_server serves unhashed names: no manifest in tests.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Hashing a password takes ~0.3 s of CPU by design; tests log in hundreds of users and test no hash strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    share_nothing_with_other_runs(config, settings)


def share_nothing_with_other_runs(config, settings):
    """Parallel workers (pytest-xdist) and concurrent runs each get their own Redis db and log file.

    pytest-django already gives each xdist worker its own test database (test_<name>_gw0, ...).
    Worker gwN uses Redis db (REDIS_URL's db + N), so a real qcluster on one worker never takes
    another worker's tasks; subprocesses inherit it through the environment.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if settings.REDIS_URL and worker.startswith("gw"):
        from django_q.conf import Conf

        base, _, db = settings.REDIS_URL.partition("?")[0].rpartition("/")
        url = f"{base}/{int(db or 0) + int(worker[2:])}"
        settings.REDIS_URL = settings.Q_CLUSTER["redis"] = Conf.REDIS = os.environ["REDIS_URL"] = url
    # A rotating log file shared by processes loses lines once another process rotates it.
    log_dir = tempfile.mkdtemp(prefix="creditmon-test-logs-")
    config.add_cleanup(lambda: shutil.rmtree(log_dir, ignore_errors=True))
    settings.LOG_DIR = Path(log_dir)
    settings.LOGGING["handlers"]["file"]["filename"] = str(settings.LOG_DIR / "creditmon.log")
    logging.config.dictConfig(settings.LOGGING)
    os.environ["CREDITMON_LOG_DIR"] = log_dir


@pytest.hookimpl(tryfirst=True)  # before pytest-django's stable sort: database tests, transactional, the rest
def pytest_collection_modifyitems(config, items):
    """Slow end-to-end tests first within their kind, so parallel workers overlap them with the rest.

    pytest-django then keeps Django's order (a transactional test empties the tables the migrations
    filled, so those run after the others). Browser tests share one worker (one Chromium): see the
    `slow`, `serial` and `browser` markers in pyproject.toml.
    """
    for item in items:
        for group in ("browser", "serial"):
            if item.get_closest_marker(group) and config.pluginmanager.hasplugin("xdist"):
                item.add_marker(pytest.mark.xdist_group(group))
    items.sort(
        key=lambda item: 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("browser") else 2
    )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a file (not :memory:) so a qcluster subprocess can share the test database.

    With pytest-xdist each worker has its own: its own tmp path, and on PostgreSQL test_<name>_gwN.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session")
def redis_client():
    from django.conf import settings

    if not settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture(autouse=True)
def empty_task_queue(redis_client):
    """Redis is not rolled back with a test's transaction: each test starts with django-q2's queue empty,
    as it does with the database broker, whichever tests ran before it on this worker."""
    if redis_client is not None:
        from django.conf import settings

        for key in redis_client.scan_iter(f"django_q:{settings.Q_CLUSTER['name']}:*"):
            redis_client.delete(key)


@pytest.fixture(autouse=True)
def empty_cache():
    """Django's cache (the figures kept per activity sync) outlives a test's rolled-back rows: each test starts
    with it empty, as a new process does."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def simulator_server():
    sim = Simulator("steady").start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator_server, settings):
    """The simulator reset to `management` figures (stable, no drift), and settings pointing at it."""
    simulator_server.set_scenario("management")
    simulator_server.set_failure(None)
    simulator_server.requests.clear()
    settings.OPENROUTER_BASE_URL = simulator_server.url
    settings.OPENROUTER_API_KEY = PROD_KEY
    settings.OPENROUTER_API_KEYS = ""
    settings.OPENROUTER_MANAGEMENT_KEY = ""
    settings.OPENROUTER_TIMEOUT = 2.0
    settings.OPENROUTER_MAX_RETRIES = 1
    settings.NOTIFY_URLS = ""
    settings.HEARTBEAT_URL = ""
    return simulator_server


@pytest.fixture
def keys():
    return {"prod": PROD_KEY, "dev": DEV_KEY, "management": MANAGEMENT_KEY}


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        server = self.server
        if server.fail:
            self.send_response(500)
            self.end_headers()
            return
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode(errors="replace")
        server.received.append({"path": self.path, "headers": dict(self.headers), "body": payload})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_receiver():
    """A real local HTTP server that records what it is sent; set `.fail = True` to answer 500."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []
    server.fail = False
    server.url = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_sink():
    """A real local SMTP server (aiosmtpd) collecting messages in `.messages`."""
    import socket
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    controller.messages = handler.messages
    controller.url = f"mailto://127.0.0.1:{port}?from=alerts@example.com&to=ops@example.org"
    yield controller
    controller.stop()
