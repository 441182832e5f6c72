"""What every page's base template needs: demo banner and the last successful check."""

from django.conf import settings
from django.db import DatabaseError

from .models import CreditLog


def creditmon(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"demo_mode": settings.CREDITMON_DEMO}
    try:
        last_ok = CreditLog.objects.successful().order_by("-timestamp").values_list("timestamp", flat=True).first()
    except DatabaseError:
        last_ok = None
    return {"demo_mode": settings.CREDITMON_DEMO, "last_successful_check": last_ok}
