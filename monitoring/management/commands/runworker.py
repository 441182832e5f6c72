"""python manage.py runworker: django-q2's cluster, its sentinel running in this process (the Procfile's worker).

`qcluster` keeps a parent that only waits for the sentinel: a whole Django process (about 19 MB PSS) doing
nothing. Here this process is the sentinel: it runs the scheduler, guards the worker process, and runs django-q2's
monitor and pusher as threads (monitoring.cluster: two forked processes fewer, about 20 MB).
"""

import os
import signal
import threading
import time
import uuid

from django_q.cluster import get_mp_context

from monitoring.cluster import Sentinel
from monitoring.management.base import MonitoringCommand

STOP_GRACE = 2.5  # seconds for django-q2's own orderly stop


class Command(MonitoringCommand):
    help = "Run the django-q2 worker cluster with this process as its sentinel (qcluster minus a waiting parent)."

    def handle(self, *args, **options):
        context = get_mp_context()
        stop, started = context.Event(), context.Event()
        sentinel = Sentinel(stop, started, uuid.uuid4(), start=False)  # sets its own signal dispositions first
        main = os.getpid()

        def request_stop(signum, frame):
            if os.getpid() != main:  # a worker forked from here: the default, which ends it
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            # The guard loop waits on this event: set it from another thread, never inside its own wait.
            threading.Thread(target=stop_in_order, daemon=True).start()

        def stop_in_order():
            stop.set()
            # After a reincarnation django-q2's orderly stop can wait forever (a killed worker took the queue's
            # lock with it): what is still running after the grace is terminated (a run records why it stopped).
            time.sleep(STOP_GRACE)
            for process in list(sentinel.pool):  # the monitor and pusher threads end with this process
                if process.is_alive():
                    process.terminate()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        sentinel.start()  # spawns the processes, guards them until `stop` is set, then stops them in order
