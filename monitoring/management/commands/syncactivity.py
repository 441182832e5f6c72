"""python manage.py syncactivity [--backfill]: store OpenRouter's spend by model (GET /activity) now."""

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from monitoring.account import sync_activity
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand
from monitoring.openrouter import OpenRouterError


class Command(MonitoringCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Fetch spend by model and by key (GET /activity, management key) and store it; --backfill: all 30 days."

    def add_arguments(self, parser):
        parser.add_argument("--backfill", action="store_true", help="re-fetch the whole 30 days OpenRouter keeps")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        if not settings.OPENROUTER_MANAGEMENT_KEY:
            raise CommandError("OPENROUTER_MANAGEMENT_KEY not set: /activity needs a management key (add it to .env)")
        try:
            written = sync_activity(timezone.now(), backfill=options["backfill"])
        except OpenRouterError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{written} activity rows stored")
