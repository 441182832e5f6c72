"""Thin old credit-log rows (RETENTION_DAYS), keeping every daily figure and burn rate as they were."""

from django.conf import settings
from django.core.management.base import CommandError

from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand
from monitoring.retention import MIN_RETENTION_DAYS, prune_credit_log


class Command(MonitoringCommand):
    help = "Thin credit-log rows older than RETENTION_DAYS, keeping the readings daily figures need."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            help=f"keep every row of the last N days (default RETENTION_DAYS, min {MIN_RETENTION_DAYS})",
        )
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")

    def handle(self, *args, days, dry_run, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        days = settings.RETENTION_DAYS if days is None else days
        if not days:
            self.stdout.write("Retention is off (RETENTION_DAYS=0): every row is kept. Pass --days N to prune once.")
            return
        try:
            result = prune_credit_log(days, dry_run=dry_run)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.deleted} of {result.examined} rows older than {result.cutoff:%Y-%m-%d} (UTC); "
            f"kept {result.kept}: each day's first and last readings, resets, top-ups, one failure per day. "
            f"{verb} {result.audit_deleted} audit-trail entries older than that."
        )
