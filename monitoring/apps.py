from django.apps import AppConfig

from . import checks  # noqa: F401  (registers the system checks)


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "OpenRouter credit monitoring"
