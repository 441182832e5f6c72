"""Configuration mistakes surface as system checks with a hint, not as a traceback at 3 a.m."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security)
def check_configuration(app_configs, **kwargs):
    problems = []
    if not settings.OPENROUTER_API_KEY and not settings.OPENROUTER_MANAGEMENT_KEY and not settings.CREDITMON_DEMO:
        problems.append(
            Warning(
                "OPENROUTER_API_KEY not set: checks will fail.",
                hint="Add OPENROUTER_API_KEY=sk-or-v1-... to .env (see .env.example), or run `make run` for the demo.",
                id="monitoring.W001",
            )
        )
    if settings.OPENROUTER_MIN_BALANCE >= settings.OPENROUTER_CREDIT_THRESHOLD:
        problems.append(
            Warning(
                "OPENROUTER_MIN_BALANCE is not below OPENROUTER_CREDIT_THRESHOLD: no warning comes before critical.",
                hint="Set the threshold above the minimum operating balance.",
                id="monitoring.W002",
            )
        )
    if settings.FORECAST_CRITICAL_DAYS > settings.FORECAST_WARNING_DAYS:
        problems.append(
            Warning(
                "FORECAST_CRITICAL_DAYS is above FORECAST_WARNING_DAYS.",
                hint="The critical horizon should be the shorter one (defaults 7 and 2).",
                id="monitoring.W003",
            )
        )
    if settings.CHECK_INTERVAL_MINUTES < 1:
        problems.append(Warning("CHECK_INTERVAL_MINUTES must be at least 1.", id="monitoring.W004"))
    if settings.AGENT_WEBHOOK_URL and not settings.AGENT_WEBHOOK_SECRET:
        problems.append(
            Warning(
                "AGENT_WEBHOOK_URL is set without AGENT_WEBHOOK_SECRET: agent tasks are posted unsigned.",
                hint='Set AGENT_WEBHOOK_SECRET (python -c "import secrets; print(secrets.token_urlsafe(32))") and '
                "check X-Creditmon-Signature in the receiver.",
                id="monitoring.W019",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    """The development key is published in the repository: sessions and django-q2's task signatures forgeable."""
    if settings.SECRET_KEY != settings.DEVELOPMENT_SECRET_KEY:
        return []
    return [
        Error(
            "DJANGO_SECRET_KEY is the development key published in the repository.",
            hint="Set DJANGO_SECRET_KEY to a long random value: "
            'python -c "import secrets; print(secrets.token_urlsafe(50))"',
            id="monitoring.E001",
        )
    ]
