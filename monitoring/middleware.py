"""A strict Content-Security-Policy on every page (login is Django's own LoginRequiredMiddleware), and 503s
instead of HTML 500s from the machine endpoints when the database is down."""

import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse

from .management.base import database_problem

logger = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response


class DatabaseUnavailableMiddleware:
    """The machine endpoints answer 503 in their own format when the database cannot be used, never an HTML 500
    with a traceback: JSON for /api/ and /healthz, text for /metrics. The cause goes to the log, not the caller."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DatabaseError) or (problem := database_problem(exception)) is None:
            return None
        path = request.path
        if not (path.startswith("/api/") or path in ("/metrics", "/healthz")):
            return None
        logger.error("%s %s: %s", request.method, path, problem)
        if path == "/metrics":
            return HttpResponse("# the database is unavailable\n", status=503, content_type="text/plain")
        if path == "/healthz":
            return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
        return JsonResponse({"error": "the database is unavailable: try again later"}, status=503)
