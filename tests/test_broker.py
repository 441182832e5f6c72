"""The task broker down (Redis unreachable): Check now says so in one line, and the page tells "the broker is
down" apart from "no worker is running"."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf

from monitoring import views

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def redis_at(monkeypatch):
    """Point django-q2 at a Redis broker (its Conf is read once at import, so settings cannot)."""

    def point(url: str) -> None:
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", url)

    return point


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ops", password="a-long-password"))
    return client


def test_check_now_with_redis_unreachable_says_so_in_one_line(operator, redis_at, closed_port):
    redis_at(f"redis://:pa55word@127.0.0.1:{closed_port}/0")
    response = operator.post("/health/check-now/", follow=True)
    assert response.status_code == 200
    [message] = response.context["messages"]
    text = str(message)
    assert message.level_tag == "error" and "\n" not in text
    assert text.startswith("Check now could not be queued: the task broker")
    assert f"Redis at 127.0.0.1:{closed_port}" in text and "pa55word" not in text
    assert views.CHECK_NOW not in operator.session  # nothing waits for a task that was never queued


def queued_long_ago(client) -> None:
    session = client.session
    queued_at = timezone.now() - timedelta(seconds=views.WORKER_SILENT_SECONDS + 10)
    session[views.CHECK_NOW] = {"task": "never-started", "queued_at": queued_at.isoformat()}
    session.save()


def test_a_waiting_check_with_the_broker_down_blames_the_broker_not_the_worker(operator, redis_at, closed_port):
    redis_at(f"redis://127.0.0.1:{closed_port}/0")
    queued_long_ago(operator)
    page = operator.get("/health/")
    assert page.context["check_now"]["worker_state"] == "broker_down"
    assert "The worker cannot take it: the task broker" in page.text
    assert "No worker" not in page.text


def test_a_waiting_check_with_redis_up_and_no_cluster_says_no_worker_runs(operator, redis_at, settings):
    # This test worker's own Redis db in the PostgreSQL + Redis pass (no cluster runs during this test), else one
    # no test uses.
    url = settings.REDIS_URL or "redis://127.0.0.1:6379/11"
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379 to tell a missing worker from a missing broker")
    redis_at(url)
    queued_long_ago(operator)
    page = operator.get("/health/")
    assert page.context["check_now"]["worker_state"] == "no_worker"
    assert "No worker is running: start the worker" in page.text
