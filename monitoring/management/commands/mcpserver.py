"""python manage.py mcpserver: creditmon's MCP server on stdio, for a local agent (HTTP is /mcp on the web server)."""

import logging
import sys

from django.core.management.base import BaseCommand

from monitoring.mcp_server import app


class Command(BaseCommand):
    requires_system_checks = []  # stdout is the protocol: `manage.py check` reports configuration
    help = "Serve the MCP tools on stdin/stdout (the agent starts this command); logs go to stderr."

    def handle(self, *args, **options):
        # Nothing but protocol on stdout: every log handler that writes there is pointed at stderr.
        for name in ("", "monitoring", "django-q", "mcp"):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
                    handler.setStream(sys.stderr)
        logging.captureWarnings(True)  # warnings are logged (to stderr), never printed
        app.run("stdio")
