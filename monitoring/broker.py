"""The task broker as the pages see it: queue a task, and tell "no worker" apart from "the broker is down".

With Redis, a running django-q2 cluster refreshes its status there every half second (it expires in 3 s), so
the page can see whether one runs; the ORM broker keeps no shared status, so there only "not started yet" is known.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.status import Stat
from django_q.tasks import async_task

logger = logging.getLogger("monitoring")

NO_WORKER = "no_worker"
BROKER_DOWN = "broker_down"
WAITING = "waiting"  # a worker runs (or, on the ORM broker, none can be seen): the task waits its turn


class BrokerUnavailable(Exception):
    """The task could not be queued: the message says why in one line."""


def uses_redis() -> bool:
    return not Conf.ORM and bool(Conf.REDIS)


def errors() -> tuple[type[Exception], ...]:
    """What an unreachable broker raises. redis is imported only when it is the broker: on the ORM broker it would
    be 6 MB of every web worker's memory for errors that cannot happen."""
    if not uses_redis():
        return (OSError,)
    import redis

    return (redis.RedisError, OSError)


def where() -> str:
    """The broker's address without its password (Redis URLs often carry one)."""
    parts = urlsplit(str(Conf.REDIS))
    return f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}"


def down_message() -> str:
    return f"the task broker ({where()}) cannot be reached: start Redis or check REDIS_URL"


def queue(func: str, **options) -> str:
    """async_task, with an unreachable broker turned into one line instead of a 500."""
    try:
        return async_task(func, **options)
    except errors() as exc:
        logger.error("Could not queue %s: %s (%s)", func, down_message(), type(exc).__name__)
        raise BrokerUnavailable(down_message()) from None


def worker_state() -> tuple[str, str]:
    """(state, sentence) for a queued task nobody has started: no worker, the broker down, or its turn to come.

    The no-worker sentence ends before the command, which the page shows as code.
    """
    if not uses_redis():
        return NO_WORKER, "No worker has started it yet: start the worker:"
    broker = get_broker()
    try:
        broker.ping()
        clusters = [stat for stat in Stat.get_all(broker) if stat.status != Conf.STOPPED]
    except errors():
        return BROKER_DOWN, f"The worker cannot take it: {down_message()}."
    if not clusters:
        return NO_WORKER, "No worker is running: start the worker:"
    return WAITING, f"A worker is running ({len(clusters)} cluster(s) on {where()}); the check waits its turn."
