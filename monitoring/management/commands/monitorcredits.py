"""python manage.py monitorcredits: the scheduled job, run by hand; exit status as a monitoring plugin."""

import sys

from django.core.management.base import CommandError

from monitoring import tasks
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand
from monitoring.models import Level
from monitoring.monitor import overall_level


class Command(MonitoringCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = (
        "Run the scheduled monitoring job now: check, log, evaluate alerts, notify. "
        "Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (checks failed, or another run is in progress)."
    )

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        try:
            statuses = tasks.run_job()
        except tasks.RunInProgress as exc:
            raise CommandError(f"{exc}. Try again when it ends.", returncode=int(Level.UNKNOWN)) from None
        self.stdout.write(tasks.summary(statuses))
        for status in statuses:
            if not status.log.ok:
                self.stderr.write(f"{status.name}: {status.log.error}")
        sys.exit(int(overall_level(statuses)))
