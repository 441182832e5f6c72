"""Logging helpers: no API key ever reaches a log line or file."""

import logging
import logging.handlers
import os
import re

# Real keys are sk-or-v1-<64 hex>; masked labels (sk-or-v1-au7...890) stay readable. Bearer headers too.
KEY_PATTERN = re.compile(r"sk-or-[A-Za-z0-9_-]{20,}")
BEARER_PATTERN = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


def configured_secrets() -> list[str]:
    from django.conf import settings

    secrets = [settings.OPENROUTER_API_KEY, settings.OPENROUTER_MANAGEMENT_KEY]
    for item in settings.OPENROUTER_API_KEYS.replace(",", " ").split():
        secrets.append(item.partition("=")[2] or item)
    secrets += [settings.METRICS_TOKEN, settings.API_TOKEN]
    return [s for s in secrets if s and len(s) >= 6]


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Replace every configured secret and anything shaped like a key with a marker."""
    if secrets is None:
        try:
            secrets = configured_secrets()
        except Exception:  # settings not configured (e.g. a bare script): patterns still apply
            secrets = []
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    text = KEY_PATTERN.sub("[redacted-key]", text)
    return BEARER_PATTERN.sub(r"\1[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatting happens later; pre-render and scrub the traceback text too.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class SafeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler that creates its folder first."""

    def __init__(self, filename: str, *args, **kwargs):
        os.makedirs(os.path.dirname(filename), exist_ok=True)
        super().__init__(filename, *args, **kwargs)


def console_logging(verbosity: int) -> None:
    """A command logs to the log file only (cron mails any output); `-v 2` or more shows the log lines too."""
    for name in ("", "monitoring", "django-q"):
        for handler in logging.getLogger(name).handlers:
            if handler.get_name() == "console":
                handler.setLevel(logging.NOTSET if verbosity >= 2 else logging.CRITICAL + 1)
