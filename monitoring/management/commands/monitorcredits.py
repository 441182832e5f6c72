"""python manage.py monitorcredits: the scheduled job, run by hand."""

from django.core.management.base import BaseCommand

from monitoring import tasks
from monitoring.logredact import console_logging


class Command(BaseCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Run the scheduled monitoring job now: check, log, evaluate alerts, notify."

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        summary = tasks.monitor_job()
        self.stdout.write(summary)
