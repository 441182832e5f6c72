"""Run what the pages queued for django-q2, in this process: the queued job's own code, its Task row saved.

A cluster worker does the same in its own process (see test_qcluster.py and test_runs.py for the real one);
in-process, a test's database transaction stays in view.
"""

from __future__ import annotations

import pydoc
import traceback

from django.utils import timezone
from django_q.brokers import get_broker
from django_q.monitor import save_task
from django_q.signing import SignedPackage


def purge_queue() -> None:
    """Nothing left over: Redis keeps its lists between tests, whatever the database rolls back."""
    get_broker().purge_queue()


def run_queued() -> list[dict]:
    """Dequeue every waiting task, run it, store its result as the cluster's monitor would."""
    broker = get_broker()
    done = []
    while packages := broker.dequeue():
        for ack_id, package in packages:
            task = SignedPackage.loads(package)
            try:
                task["result"], task["success"] = pydoc.locate(task["func"])(*task["args"], **task["kwargs"]), True
            except Exception as exc:  # stored like django-q2's worker stores it: "<error> : <traceback>"
                task["result"], task["success"] = f"{exc} : {traceback.format_exc()}", False
            task["stopped"] = timezone.now()
            task["sync"] = True  # keeps save_task from closing this test's connection
            save_task(task, broker)
            broker.acknowledge(ack_id)
            done.append(task)
    return done
