"""WSGI entry point (gunicorn creditmon.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "creditmon.settings")
application = get_wsgi_application()
