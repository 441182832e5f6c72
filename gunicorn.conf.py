"""gunicorn's settings for creditmon (read from the project folder by default): `make run`, the Procfile, systemd.

The Procfile names the app and the worker class (creditmon.asgi with uvicorn's worker, so /mcp and the pages share
one server); this file holds what every deployment shares. Command-line options override it.
"""

import logging
import os
import re

# 127.0.0.1 unless told otherwise: put a reverse proxy in front (README), or HOST=0.0.0.0 on a platform.
bind = f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"
# One process serves a team's dashboard; WEB_CONCURRENCY=2 for more at about 65 MB each (bench/memory.py).
workers = int(os.environ.get("WEB_CONCURRENCY") or 1)
timeout = 30
# A stop lets requests in flight finish for this long: `make run` and systemd stop within 5 s.
graceful_timeout = 3
# The Django app is loaded in each worker, not in the master: a small master, and workers that restart cleanly.
preload_app = os.environ.get("GUNICORN_PRELOAD", "").lower() in ("1", "true", "yes", "on")
accesslog = "-"
# The path without its query string, and no referrer: a token sent by mistake in a URL never reaches the log.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
control_socket_disable = True  # nothing here uses gunicorn's control socket (it would write under $HOME)

QUERY = re.compile(r"\?\S*")


class DropQueryStrings(logging.Filter):
    """uvicorn's access lines carry the full path: its query string goes, whatever it holds."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(QUERY.sub("", arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def post_worker_init(worker) -> None:
    logging.getLogger("uvicorn.access").addFilter(DropQueryStrings())
