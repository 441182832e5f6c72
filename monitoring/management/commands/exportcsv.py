"""Export the credit log, or spend by model or by key, as CSV for a range of days."""

from contextlib import closing
from datetime import timedelta
from itertools import chain, islice

from django.core.management.base import CommandError
from django.utils import timezone

from monitoring.api import requested_range
from monitoring.exports import EXPORTS, write_csv
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand, argument_error


class Command(MonitoringCommand):
    help = "Write a CSV export (credit-log, spend-by-model, spend-by-key) to stdout or a file."

    def add_arguments(self, parser):
        parser.add_argument("export", choices=sorted(EXPORTS))
        parser.add_argument("--days", type=float, default=30, help="the last N days (default 30)")
        parser.add_argument("--start", help="first day, YYYY-MM-DD (instead of --days)")
        parser.add_argument("--end", help="last day, YYYY-MM-DD (default today)")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args, export, days, start, end, output, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        params = {"start": start, "end": end} if start or end else {"days": str(days)}
        try:
            first, last = requested_range(params, timezone.now())
        except ValueError as exc:
            raise argument_error(str(exc)) from None
        source = EXPORTS[export](first, last)
        with closing(source):  # a closed pipe stops the rows before the connection closes, not at interpreter exit
            self.write_rows(export, first, last, output, source)

    def write_rows(self, export, first, last, output, source):
        rows = iter(source)
        head = list(islice(rows, 2))  # the first query runs before anything is written: a database error stays alone
        rows = chain(head, rows)
        if output:
            try:
                with open(output, "w", newline="", encoding="utf-8") as out:
                    count = write_csv(rows, out)
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror}") from None
            span = timedelta(seconds=round((last - first).total_seconds()))
            self.stderr.write(f"Wrote {count} rows to {output} ({export}, {span} ending {last:%Y-%m-%d %H:%M} UTC)")
        else:
            write_csv(rows, self.stdout)
