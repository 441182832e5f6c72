"""runworker's cluster (monitoring.cluster): the monitor and pusher are threads of the sentinel, so a worker must
never be forked while one of them is inside the database, and the result queue must not close under the monitor."""

from __future__ import annotations

import threading
import time

import pytest

from monitoring import cluster
from monitoring.cluster import FORK_LOCK, HeldWhileWorking, LockedBroker, ResultQueue


def test_the_monitor_holds_the_fork_lock_from_a_result_until_it_asks_for_the_next_and_not_after_stop():
    queue = ResultQueue()
    queue.put({"id": "a"})
    queue.put("STOP")
    held = HeldWhileWorking(queue)
    assert held.get(timeout=5) == {"id": "a"}
    assert FORK_LOCK.locked()  # saving the result: no fork now
    assert held.get(timeout=5) == "STOP"
    assert not FORK_LOCK.locked()


def test_a_monitor_that_fails_lets_go_of_the_fork_lock(monkeypatch):
    def failing_monitor(result_queue, broker):
        result_queue.get(timeout=5)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(cluster, "monitor", failing_monitor)
    queue = ResultQueue()
    queue.put({"id": "a"})
    with pytest.raises(RuntimeError):
        cluster.monitor_results(queue, broker=None)
    assert not FORK_LOCK.locked()  # the sentinel can fork the next worker, and replace the monitor


def test_the_pusher_reads_the_broker_under_the_fork_lock():
    seen = []

    class Broker:
        list_key = "creditmon"

        def dequeue(self):
            seen.append(FORK_LOCK.locked())
            return []

    broker = LockedBroker(Broker())
    assert broker.dequeue() == [] and seen == [True] and not FORK_LOCK.locked()
    assert broker.list_key == "creditmon"


def test_closing_the_result_queue_waits_for_the_monitor_to_read_everything_up_to_stop():
    queue, read = ResultQueue(), []

    def slow_monitor():
        time.sleep(0.5)  # still saving an earlier result when the sentinel stops
        read.extend(iter(lambda: queue.get(timeout=5), "STOP"))

    queue.reader = threading.Thread(target=slow_monitor)
    queue.reader.start()
    for n in range(3):
        queue.put({"id": n})
    queue.put("STOP")
    queue.close()  # as django-q2's Sentinel.stop does, which also closes this process's reading end
    queue.join_thread()
    queue.reader.join(5)
    assert read == [{"id": 0}, {"id": 1}, {"id": 2}]
