"""Recompute what is derived from the credit log for speed: running spend totals and the daily figures."""

import time

from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand
from monitoring.models import CreditLog, DailyFigure, HourlyFigure


class Command(MonitoringCommand):
    help = (
        "Recompute the readings' running spend totals (burn rates), the daily figures (one row per key per day in "
        "CREDITMON_TIME_ZONE) and the hourly ones (UTC) from the credit log: after a bulk load or a restore."
    )

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        started = time.monotonic()
        readings = CreditLog.objects.recompute_spend_totals()
        days = DailyFigure.objects.rebuild()
        hours = HourlyFigure.objects.rebuild()
        took = time.monotonic() - started
        self.stdout.write(
            f"Chained {readings} readings' spend totals, rebuilt {days} daily and {hours} hourly rows in {took:.1f} s."
        )
