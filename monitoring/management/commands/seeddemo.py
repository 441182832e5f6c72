"""python manage.py seeddemo: the demo's month, made by running the real job over a simulated clock (demo mode only)."""

from datetime import datetime

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring import demo
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand
from monitoring.models import CreditLog


def end_time(text: str) -> datetime:
    """--at: an ISO-8601 time with its zone (runapp passes its simulator's)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--at must be an ISO-8601 time (2026-12-04T15:00:00+00:00), not {text[:40]!r}") from None
    if when.tzinfo is None:
        raise CommandError("--at needs a time zone (e.g. +00:00)")
    return when


class Command(MonitoringCommand):
    help = "Fill an empty demo database with a month made by the real checks, alerts and notifications."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--at", help="where the month ends (ISO-8601 with a zone; default now)")
        parser.add_argument("--force", action="store_true", help="seed even outside demo mode")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        if not settings.CREDITMON_DEMO and not options["force"]:
            raise CommandError("seeddemo only runs in demo mode (CREDITMON_DEMO=true): it invents history.")
        if not 2 <= options["days"] <= 60:
            raise CommandError("--days must be between 2 and 60")
        if CreditLog.objects.exists():
            self.stdout.write("Demo history already present: nothing to do.")
            return
        now = end_time(options["at"]) if options["at"] else timezone.now()
        # The running demo's channel (runapp's inbox) when NOTIFY_URLS names one; else an inbox for this run.
        count = demo.seed(now, options["days"], notify_url=settings.NOTIFY_URLS or None)
        self.stdout.write(f"Seeded {count} demo checks over {options['days']} days, made by the real monitoring job.")
