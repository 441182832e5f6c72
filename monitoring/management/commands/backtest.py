"""Replay a spend trace through the real schedules, checks, alerts and notifications on a simulated clock."""

import json

from django.core.management.base import CommandError

from monitoring.backtest import TraceError, read_trace, replay
from monitoring.management.base import MonitoringCommand


class Command(MonitoringCommand):
    help = (
        "Replay TRACE.csv (timestamp,usage,limit,limit_remaining,total_credits,total_usage) through the real "
        "schedules, checks, alerts and notifications against the simulated OpenRouter, in a scratch database."
    )

    def add_arguments(self, parser):
        parser.add_argument("trace", help="CSV trace, a row every 10 minutes or less (see bench/traces/)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            result = replay(read_trace(options["trace"]))
        except TraceError as exc:
            raise CommandError(f"{options['trace']}: {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        out = self.stdout.write
        out(f"Replayed {options['trace']}: {result['start']} to {result['end']} in {result['seconds']:.1f} s")
        runs = ", ".join(f"{func.rsplit('.', 1)[-1]} x{n}" for func, n in result["runs"].items())
        out(f"Runs: {runs}; {result['checks']} logged checks")
        out(f"Exhausted: {result['exhausted_at'] or 'no'}")
        lead = result["lead_hours"]
        out(f"Lead: {lead:.1f} hours before exhaustion" if lead is not None else "Lead: -")
        out(f"Notifications ({len(result['notifications'])}):")
        for note in result["notifications"]:
            out(f"  {note['at'][:16]} {note['kind']:9} {note['level']:8} {note['condition']}: {note['message']}")
