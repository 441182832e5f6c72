"""python manage.py sendtestnotification: prove every NOTIFY_URLS channel works."""

import getpass

from django.core.management.base import CommandError

from monitoring import notify
from monitoring.logredact import console_logging
from monitoring.management.base import MonitoringCommand


class Command(MonitoringCommand):
    help = "Send a test notification to every channel in NOTIFY_URLS and report each result."

    def handle(self, *args, **options):
        console_logging(options["verbosity"])  # the log file has the details; -v 2 shows them here
        if not notify.channels():
            raise CommandError("NOTIFY_URLS is empty: add one or more Apprise URLs to .env (see .env.example).")
        deliveries = notify.send_test(f"{getpass.getuser()} (sendtestnotification)")
        for delivery in deliveries:
            line = f"{delivery.status}: {delivery.channel}" + (f" ({delivery.error})" if delivery.error else "")
            self.stdout.write(line)
        failed = [d for d in deliveries if d.status != d.SENT]
        if failed:
            raise CommandError(f"{len(failed)} of {len(deliveries)} channels failed; see the errors above.")
        self.stdout.write(self.style.SUCCESS(f"Sent to {len(deliveries)} channel(s)."))
