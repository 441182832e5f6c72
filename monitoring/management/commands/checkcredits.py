"""python manage.py checkcredits: one check now, logged; exit status as a monitoring plugin."""

import json
import sys

from django.db import DatabaseError

from monitoring import monitor
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand, database_problem, usd_amount
from monitoring.models import Level
from monitoring.plugin import SERVICE, format_plugin
from monitoring.report import format_report


class Command(MonitoringCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Check OpenRouter credits now, log the result, and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."

    def add_arguments(self, parser):
        parser.add_argument("--threshold", type=usd_amount, help="warning threshold in USD (default: setting)")
        parser.add_argument("--verbose", action="store_true", help="add limit window, usage windows, raw limits")
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="print one JSON object for scripts")
        output.add_argument(
            "--plugin", action="store_true", help="monitoring-plugin output (Nagios, Icinga): status | perfdata"
        )
        parser.add_argument("--all", action="store_true", help="list every key, OK ones too (default: the others)")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        try:
            found = monitor.check_all(options["threshold"])
        except DatabaseError as exc:
            if (problem := database_problem(exc)) is None:
                raise
            self.fail(options, problem)
        if options["json"]:
            main = found.primary
            payload = {
                "status": found.level_name,
                "exit_code": int(found.level),
                "remaining": main.as_dict()["remaining"] if main else None,
                "burn_rate_per_day": main.as_dict()["burn_rate"] if main else None,
                "days_left": main.as_dict()["days_left"] if main else None,
                "alert": main.alert if main else None,
                **found.as_dict(),
            }
            self.stdout.write(json.dumps(payload, indent=2))
        elif options["plugin"]:
            self.stdout.write(format_plugin(found, options["threshold"]), ending="")
        else:
            self.stdout.write(format_report(found, options["verbose"], options["all"]), ending="")
            for key_status in found.keys:  # one line per failed check on stderr, for cron mail
                if key_status.log is not None and not key_status.log.ok:
                    self.stderr.write(f"{key_status.name}: {key_status.log.error}")
        sys.exit(int(found.level))

    def fail(self, options, message: str):
        if options["json"]:
            self.stdout.write(json.dumps({"status": "UNKNOWN", "exit_code": 3, "error": message}))
        elif options["plugin"]:
            self.stdout.write(f"{SERVICE} UNKNOWN - {message}")
        else:
            self.stderr.write(f"UNKNOWN: {message}")
        sys.exit(int(Level.UNKNOWN))
