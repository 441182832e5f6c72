"""python manage.py monitorcredits: the scheduled job, run by hand."""

from django.core.management.base import BaseCommand

from monitoring import tasks


class Command(BaseCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Run the scheduled monitoring job now: check, log, evaluate alerts, notify."

    def handle(self, *args, **options):
        summary = tasks.monitor_job()
        self.stdout.write(summary)
