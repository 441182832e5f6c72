"""django-q2 tasks: the scheduled monitoring job."""

from .models import Level
from .monitor import overall_level, run_monitor


def monitor_job() -> str:
    """Run by the `monitor-openrouter-credits` schedule and by `manage.py monitorcredits`."""
    statuses = run_monitor()
    return f"{Level(overall_level(statuses)).label}: " + "; ".join(f"{s.name}: {s.message}" for s in statuses)
