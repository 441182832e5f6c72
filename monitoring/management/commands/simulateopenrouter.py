"""python manage.py simulateopenrouter: serve the simulated OpenRouter API until Ctrl-C."""

from monitoring.management.base import MonitoringCommand
from monitoring.simulator import DEV_KEY, MANAGEMENT_KEY, PROD_KEY, SCENARIOS, Simulator


class Command(MonitoringCommand):
    requires_system_checks = []  # the simulator needs no database or settings
    help = "Serve a simulated OpenRouter credit API (stdlib HTTP server) for demos and manual testing."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765, help="port (default 8765, 0 = any free port)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--scenario", default="steady", choices=sorted(SCENARIOS), help="initial scenario")

    def handle(self, *args, **options):
        sim = Simulator(scenario=options["scenario"], host=options["host"], port=options["port"])
        sim.log_requests = True
        # These are the simulator's own fake keys, so printing them in full is the point.
        self.stdout.write(f"Simulated OpenRouter on {sim.url} (scenario: {options['scenario']})")
        self.stdout.write(f"  OPENROUTER_BASE_URL={sim.url}")
        self.stdout.write(f"  OPENROUTER_API_KEY={PROD_KEY}    # Production Key")
        self.stdout.write(f"  dev key:        {DEV_KEY}")
        self.stdout.write(f"  management key: {MANAGEMENT_KEY}")
        control = f"http://{sim.host}:{sim.port}/_sim"
        self.stdout.write(f"  control API: {control}/state (POST {control}/scenario|key|account|failure)")
        self.stdout.flush()
        try:
            sim.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("stopped")
