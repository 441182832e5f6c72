"""What every page's base template needs: demo banner, the last successful check, the state at a glance, and
whether the user may act (operators)."""

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from . import dashboard, roles
from .demo import DEMO_PASSWORD, DEMO_USERNAME
from .models import CreditLog


def creditmon(request):
    ctx = {"demo_mode": settings.CREDITMON_DEMO}
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        if settings.CREDITMON_DEMO:
            ctx["demo_login"] = {"username": DEMO_USERNAME, "password": DEMO_PASSWORD}
        return ctx
    try:
        ctx["can_operate"] = roles.can_operate(request.user)  # actions a viewer may not take are not offered
        ctx["last_successful_check"] = (
            CreditLog.objects.successful().order_by("-timestamp").values_list("timestamp", flat=True).first()
        )
        # One verdict for the tab title, the favicon, the brand dot and Health's verdict line.
        ctx.update(dashboard.at_a_glance(timezone.now(), getattr(request, "creditmon_status", None)))
    except DatabaseError:
        ctx["last_successful_check"] = None
    return ctx
