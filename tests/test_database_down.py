"""The database down, for real: a gunicorn whose PostgreSQL is behind a TCP proxy this test controls. A restart of
the database costs no request; while it is unreachable every page (login included) answers 503 with a short page,
never a traceback or the debug page; and the pages come back on their own when it returns."""

from __future__ import annotations

import re
import socket
import threading
import uuid

import pytest
import requests

from tests.test_faults_ops import PG_HOST, PG_PORT, clean_env, manage, postgres_up, start_gunicorn, stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.engine_independent,  # its own PostgreSQL database whatever DATABASE_URL: one pass is enough
    pytest.mark.skipif(not postgres_up(), reason=f"needs PostgreSQL on {PG_HOST}:{PG_PORT} (CI starts one)"),
]
PASSWORD = "a long admin passphrase"


class Proxy:
    """A TCP proxy on a free loopback port in front of PostgreSQL: `restart()` drops every connection (as a
    database restart does), `down()` also stops listening (connections refused), `up()` listens again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.pairs: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.pairs += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restart(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for s in pairs:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def down(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone would not) and refuses
        self.listener.close()
        self.restart()


@pytest.fixture
def database(tmp_path):
    import psycopg

    name = f"creditmon_dbdown_{uuid.uuid4().hex[:8]}"
    admin_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = clean_env(tmp_path, DATABASE_URL=f"postgres://postgres@{PG_HOST}:{PG_PORT}/{name}")
        assert manage(env, "migrate", "--noinput", timeout=180).returncode == 0
        env["DJANGO_SUPERUSER_PASSWORD"] = PASSWORD
        made = manage(env, "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com")
        assert made.returncode == 0, made.stderr
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def log_in(session: requests.Session, base: str) -> requests.Response:
    session.get(f"{base}/accounts/login/", timeout=20)
    form = {"username": "root", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    url, referer = f"{base}/accounts/login/", {"Referer": base + "/"}
    return session.post(url, data=form, headers=referer, timeout=20, allow_redirects=False)


def assert_the_short_page(response: requests.Response) -> None:
    text = response.text
    assert response.status_code == 503, (response.status_code, text[:500])
    assert "The database is unavailable" in text and "Nothing is lost" in text and "Retry" in text
    assert "Traceback" not in text and "DEBUG = True" not in text and "psycopg" not in text.lower()
    assert response.headers["Retry-After"] and "no-store" in response.headers["Cache-Control"]
    assert "creditmon.css" in text  # the product's own look


def test_every_page_survives_the_database_going_away_and_coming_back(database, tmp_path):
    proxy = Proxy((PG_HOST, PG_PORT))
    env = clean_env(
        tmp_path,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{proxy.port}/{database}",
        DATABASE_CONN_MAX_AGE="60",
        DJANGO_DEBUG="true",  # the worst case: even with DEBUG on, no debug page
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
    )
    proc, base, log = start_gunicorn(env, tmp_path)
    try:
        assert base, log.read_text()
        session = requests.Session()
        first = log_in(session, base)
        assert first.status_code == 302, re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)', first.text)
        assert session.get(f"{base}/health/", timeout=20).status_code == 200

        # A restart: the kept connection is dead; the health check replaces it, and no request fails.
        proxy.restart()
        for path in ("/health/", "/alerts/", "/financial/"):
            assert session.get(f"{base}{path}", timeout=20).status_code == 200, path

        proxy.down()
        for path in ("/health/", "/alerts/", "/financial/", "/admin/"):
            assert_the_short_page(session.get(f"{base}{path}", timeout=20))
        stranger = requests.Session()
        stranger.get(f"{base}/accounts/login/", timeout=20)
        assert_the_short_page(log_in(stranger, base))  # the login itself needs the database
        api = session.get(f"{base}/api/status/", timeout=20)
        assert api.status_code == 503 and "database" in api.json()["error"]

        proxy.up()  # back on the same port: the very next request works, no restart of gunicorn
        page = session.get(f"{base}/health/", timeout=20)
        assert page.status_code == 200 and "System Health" in page.text
        assert log_in(requests.Session(), base).status_code == 302
    finally:
        stop(proc)
        proxy.down()
    text = log.read_text()
    assert re.search(r"cannot connect to the database|the database .* failed", text), text[-2000:]
