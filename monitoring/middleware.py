"""Cache-Control on every dynamic answer (the Content-Security-Policy is django-csp's, see settings), and 503s
instead of 500s when the database is down: a short page for people, one line in their own format for machines."""

from __future__ import annotations

import logging
import sys

from django.core.signals import got_request_exception
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control

from .management.base import database_problem

logger = logging.getLogger(__name__)

DATABASE_PROBLEM = "_creditmon_database_problem"  # set on the request when a database error became a 500


class PrivateNoStoreMiddleware:
    """`Cache-Control: private, no-store` on every answer built here whose view set none: the pages, the JSON API,
    the CSV exports and the admin show one person's view of the money, which no shared cache may keep. Static files
    never reach this (whitenoise answers them first, cacheable for a year)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response


def _note_database_problem(sender, request=None, **kwargs) -> None:
    """An exception outside a view (sessions, auth, a middleware) is turned into a 500 before any middleware sees
    it: remember here whether it was the database, so the middleware can answer 503 instead."""
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, DatabaseError):
        setattr(request, DATABASE_PROBLEM, database_problem(exc))


class DatabaseUnavailableMiddleware:
    """A database that is missing, unreachable or failing: 503 with a one-screen page for people (login included),
    JSON for /api/ and /healthz, text for /metrics; never a traceback or Django's debug page. The cause goes to the
    log, not the caller. Nothing is kept across requests, so the first request after the database returns works."""

    def __init__(self, get_response):
        self.get_response = get_response
        got_request_exception.connect(_note_database_problem, dispatch_uid="creditmon-database-problem")

    def __call__(self, request):
        response = self.get_response(request)
        problem = getattr(request, DATABASE_PROBLEM, None)
        if problem and response.status_code == 500:
            return unavailable(request, problem)
        return response

    def process_exception(self, request, exception):
        if not isinstance(exception, DatabaseError) or (problem := database_problem(exception)) is None:
            return None
        return unavailable(request, problem)


def unavailable(request, problem: str) -> HttpResponse:
    logger.error("%s %s: %s", request.method, request.path, problem)
    path = request.path
    if path == "/metrics":
        response = HttpResponse("# the database is unavailable\n", status=503, content_type="text/plain")
    elif path == "/healthz":
        response = JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    elif path.startswith("/api/") or path.startswith("/mcp"):
        response = JsonResponse({"error": "the database is unavailable: try again later"}, status=503)
    else:
        # Rendered without the request: the context processors would ask the database again.
        missing = "run `python manage.py migrate`" in problem
        response = HttpResponse(render_to_string("database_unavailable.html", {"missing": missing}), status=503)
    response["Retry-After"] = "30"
    patch_cache_control(response, private=True, no_store=True)
    return response
