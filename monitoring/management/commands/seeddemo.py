"""python manage.py seeddemo: a month of demo history and the demo login (demo mode only)."""

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring import demo
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand
from monitoring.models import CreditLog


class Command(MonitoringCommand):
    help = "Fill an empty demo database with a month of realistic history and the demo login."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--force", action="store_true", help="seed even outside demo mode")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        if not settings.CREDITMON_DEMO and not options["force"]:
            raise CommandError("seeddemo only runs in demo mode (CREDITMON_DEMO=true): it invents history.")
        if CreditLog.objects.exists():
            self.stdout.write("Demo history already present: nothing to do.")
            return
        count = demo.seed(timezone.now(), options["days"])
        self.stdout.write(f"Seeded {count} demo checks over {options['days']} days.")
