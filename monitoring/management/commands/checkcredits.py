"""python manage.py checkcredits: one check now, logged; exit status as a monitoring plugin."""

import json
import sys

from django.core.management.base import BaseCommand
from django.db import DatabaseError

from monitoring import monitor
from monitoring.logredact import console_logging
from monitoring.models import Level
from monitoring.report import format_report

MIGRATE_HINT = "the credit log table is missing: run `python manage.py migrate`"


class Command(BaseCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Check OpenRouter credits now, log the result, and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."

    def add_arguments(self, parser):
        parser.add_argument("--threshold", type=float, help="warning threshold in USD (default: setting)")
        parser.add_argument("--verbose", action="store_true", help="add limit window, usage windows, raw limits")
        parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        try:
            statuses = monitor.check_all(options["threshold"])
            next_check = monitor.next_check_time()
        except DatabaseError as exc:
            self.fail(options, f"{MIGRATE_HINT} ({str(exc).splitlines()[0]})")
        level = monitor.overall_level(statuses)
        if options["json"]:
            main = statuses[0]
            payload = {
                "status": Level(level).label,
                "exit_code": int(level),
                "remaining": main.as_dict()["remaining"],
                "burn_rate_per_day": main.as_dict()["burn_rate_per_day"],
                "days_left": main.as_dict()["days_left"],
                "alert": main.alert,
                "next_check": next_check.isoformat() if next_check else None,
                "keys": [s.as_dict() for s in statuses],
            }
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self.stdout.write(format_report(statuses, options["verbose"], next_check), ending="")
            for status in statuses:
                if not status.log.ok:
                    self.stderr.write(f"{status.name}: {status.log.error}")
        sys.exit(int(level))

    def fail(self, options, message: str):
        if options["json"]:
            self.stdout.write(json.dumps({"status": "UNKNOWN", "exit_code": 3, "error": message}))
        else:
            self.stderr.write(f"UNKNOWN: {message}")
        sys.exit(int(Level.UNKNOWN))
