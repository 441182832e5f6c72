"""python manage.py credithistory: the logged history, one line per entry."""

import json

from monitoring import monitor
from monitoring.api import MAX_RANGE_DAYS
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand, argument_error


class Command(MonitoringCommand):
    requires_system_checks = []  # keep script output clean; `manage.py check` reports configuration
    help = "Print the logged credit checks of the last N days, one line per entry, oldest first."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=30, help="how many days back (default 30)")
        parser.add_argument("--json", action="store_true", help="print a JSON array")

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        if not 0 < options["days"] <= MAX_RANGE_DAYS:  # also refuses nan; 1e9 days would overflow a date
            raise argument_error(f"--days must be more than 0 and at most {MAX_RANGE_DAYS}")
        rows = monitor.get_credit_history(options["days"])  # a database problem: one line from manage.py
        if options["json"]:
            self.stdout.write(json.dumps([history_item(r) for r in rows], indent=2))
            return
        if not rows:
            self.stdout.write(
                f"No checks logged in the last {options['days']:g} days: run `python manage.py checkcredits`."
            )
            return
        for row in rows:
            self.stdout.write(history_line(row))


def history_item(row) -> dict:
    return {
        "timestamp": row.timestamp.isoformat(),
        "key": row.key.display_name if row.key else row.label,
        "ok": row.ok,
        "remaining": row.remaining,
        "usage": row.usage,
        "limit": row.credit_limit,
        "account_balance": row.account_balance,
        "error": row.error or None,
    }


def history_line(row) -> str:
    when = row.timestamp.strftime("%Y-%m-%d %H:%M:%S")
    name = row.key.display_name if row.key else (row.label or "-")
    if not row.ok:
        return f"{when}  {name}  FAILED: {row.error}"
    remaining = "unknown" if row.remaining is None else f"${row.remaining:.2f}"
    limit = "no limit" if row.credit_limit is None else f"${row.credit_limit:.2f}"
    return f"{when}  {name}  {remaining} remaining  (usage ${row.usage:.2f} / {limit})"
