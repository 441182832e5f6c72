from django.apps import AppConfig
from django.db.models.signals import post_migrate

from . import checks, schedule  # noqa: F401  (checks registers the system checks)


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "OpenRouter credit monitoring"

    def ready(self) -> None:
        from django_q.signals import post_spawn  # django-q2's signals module loads its models

        # The schedules follow their settings at every migrate and every worker start (never here: no database).
        post_migrate.connect(schedule.sync_after_migrate, sender=self, dispatch_uid="monitoring-schedules-migrate")
        post_spawn.connect(schedule.sync_at_worker_start, dispatch_uid="monitoring-schedules-worker")
        post_spawn.connect(schedule.stop_cleanly_on_sigterm, dispatch_uid="monitoring-worker-sigterm")
