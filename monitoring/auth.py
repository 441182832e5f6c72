"""Login throttling (django-axes): a few wrong passwords for one user from one address lock that pair out a while."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes for every login that comes with a request (the site and admin login forms); a call without one (a
    script, Django's test Client.login) has no address to throttle and goes on to the password check."""

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The page a locked-out login gets (429): what happened and how long to wait, in the site's own layout."""
    seconds = round(settings.AXES_COOLOFF_TIME.total_seconds())
    wait = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
    ctx = {"failure_limit": settings.AXES_FAILURE_LIMIT, "wait": wait, "username": (credentials or {}).get("username")}
    return render(request, "registration/locked_out.html", ctx, status=429)
