from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "OpenRouter credit monitoring"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
