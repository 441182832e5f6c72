"""django-q2's cluster in fewer processes: its monitor and pusher run as threads of the sentinel, not forked.

A forked Django process costs about 10 MB of its own, however little it does: each query the pusher polls with
touches reference counts all over the pages it shares with its parent, which the kernel then copies (gc.freeze()
before the fork changed nothing measurable). The monitor (it saves results) and the pusher (it takes tasks from
the broker) wait on a queue or the database almost all the time, so threads of the sentinel do their work as well.
Only the worker, which runs the checks, stays a process: the sentinel still times it out, recycles it, and
replaces it if it dies. bench/memory.py measures what this saves.

A fork while another thread is inside SQLite (or any C library holding a lock) can leave the child waiting on
that lock forever, so the threads hold FORK_LOCK whenever they touch the database, and a worker is forked only
while holding it.
"""

from __future__ import annotations

import os
import threading

from django_q import cluster
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.queues import Queue

FORK_LOCK = threading.Lock()
CLOSE_GRACE = 2.0  # seconds for the monitor to save what is left before the result queue closes


class InProcess(threading.Thread):
    """A thread standing where django-q2 expects a process: alive or not, and a pid (the sentinel's) for its
    status. A thread that ends is replaced by the sentinel's guard, as a process would be."""

    def __init__(self, target, *args):
        super().__init__(target=target, args=args, name=f"django-q2 {target.__name__}", daemon=True)

    @property
    def pid(self) -> int:
        return os.getpid()


class ResultQueue(Queue):
    """The workers' results, read by the monitor thread of this process.

    Closing a queue closes this process's reading end too, once STOP is written: here that end is the monitor's,
    so the close waits for the monitor to read everything up to STOP (the results of a stopping cluster are saved).
    """

    reader: threading.Thread | None = None

    def close(self):
        if self.reader is not None and self.reader is not threading.current_thread():
            self.reader.join(CLOSE_GRACE)
        super().close()


class HeldWhileWorking:
    """The result queue as the monitor thread sees it: FORK_LOCK is held from one result to the next request,
    that is while the monitor saves the result, and released while it waits (and for good once it ends)."""

    def __init__(self, queue: Queue):
        self.queue, self.held = queue, False

    def get(self, *args, **kwargs):
        self.release()
        item = self.queue.get(*args, **kwargs)
        if item != "STOP":
            FORK_LOCK.acquire()
            self.held = True
        return item

    def release(self) -> None:
        if self.held:
            self.held = False
            FORK_LOCK.release()


def monitor_results(queue: Queue, broker) -> None:
    """django-q2's monitor, saving each result while holding FORK_LOCK."""
    held = HeldWhileWorking(queue)
    try:
        monitor(held, broker)
    finally:
        held.release()  # even if the monitor failed: the sentinel replaces it, and forks again


class LockedBroker:
    """The broker as the pusher thread sees it: FORK_LOCK held while it reads or changes the queue's rows."""

    def __init__(self, broker):
        self.broker = broker

    def dequeue(self):
        with FORK_LOCK:
            return self.broker.dequeue()

    def fail(self, task_id):
        with FORK_LOCK:
            return self.broker.fail(task_id)

    def __getattr__(self, name):
        return getattr(self.broker, name)


class Sentinel(cluster.Sentinel):
    """django-q2's sentinel with its monitor and pusher as threads; the worker pool stays forked processes."""

    def __init__(self, stop_event, start_event, cluster_id, broker=None, timeout=None, start=True):
        super().__init__(stop_event, start_event, cluster_id, broker, timeout, start=False)
        self.result_queue = ResultQueue()
        if start:
            self.start()

    def spawn_monitor(self) -> InProcess:
        thread = InProcess(monitor_results, self.result_queue, self.broker)
        self.result_queue.reader = thread
        thread.start()
        return thread

    def spawn_pusher(self) -> InProcess:
        thread = InProcess(pusher, self.task_queue, self.event_out, LockedBroker(self.broker))
        thread.start()
        return thread

    def spawn_worker(self):
        with FORK_LOCK:  # no thread of this process is inside the database while it forks
            super().spawn_worker()
