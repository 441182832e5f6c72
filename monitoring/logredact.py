"""Logging helpers: no API key ever reaches a log line or file, and no value can forge a line."""

import logging
import logging.handlers
import os
import re
from urllib.parse import urlsplit

# Real keys are sk-or-v1-<64 hex>; masked labels (sk-or-v1-au7...890) stay readable. Bearer headers too.
KEY_PATTERN = re.compile(r"sk-or-[A-Za-z0-9_-]{20,}")
BEARER_PATTERN = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
# 64 hex digits standing alone: a key's secret part, or a SHA-256 (redacted only in upstream error text).
HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")
MIN_SECRET_BODY = 16  # a key's part after its last dash, redacted alone when at least this long
# Control characters in a log message, escaped so a key or model name cannot start a new log line.
LOG_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A notification URL's level tags ("critical,warning=json://..."), as monitoring/notify.py reads them.
TAG_PREFIX = re.compile(r"^[A-Za-z0-9_,-]+=(?=[A-Za-z][A-Za-z0-9+.-]*://)")
MIN_PATH_SECRET = 8  # a webhook's path part this long is taken for a token ("hooks" is not)


def configured_secrets() -> list[str]:
    from django.conf import settings

    secrets = [settings.OPENROUTER_API_KEY, settings.OPENROUTER_MANAGEMENT_KEY]
    for item in settings.OPENROUTER_API_KEYS.replace(",", " ").split():
        secrets.append(item.partition("=")[2] or item)
    secrets += [settings.METRICS_TOKEN, settings.API_TOKEN, getattr(settings, "API_OPERATOR_TOKEN", "")]
    for item in getattr(settings, "NOTIFY_URLS", "").split():
        secrets += notify_url_secrets(TAG_PREFIX.sub("", item))
    return [s for s in secrets if s and len(s) >= 6]


def notify_url_secrets(url: str) -> list[str]:
    """What of a notification URL a log must not show (Apprise logs the whole URL at DEBUG): the URL itself, its
    password, its long path parts (webhook tokens), an ntfy topic given as the host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url.split("?", 1)[0], parts.password or ""]
    found += [segment for segment in parts.path.split("/") if len(segment) >= MIN_PATH_SECRET]
    if parts.scheme.startswith("ntfy") and parts.hostname and "." not in parts.hostname and not parts.path.strip("/"):
        found.append(parts.hostname)
    return found


def secret_forms(secret: str) -> list[str]:
    """The secret, and its body alone (sk-or-v1-<64 hex> -> the hex), as an upstream error may echo it."""
    body = secret.rsplit("-", 1)[-1]
    return [secret, body] if body != secret and len(body) >= MIN_SECRET_BODY else [secret]


def redact(text: str, secrets: list[str] | None = None, also: list[str] | tuple = ()) -> str:
    """Replace every configured secret (and `also`), with or without its prefix, in any letter case,
    and anything shaped like a key, with a marker."""
    if secrets is None:
        try:
            secrets = configured_secrets()
        except Exception:  # settings not configured (e.g. a bare script): patterns still apply
            secrets = []
    for secret in [*secrets, *also]:
        for form in secret_forms(secret):
            if form.lower() in text.lower():
                text = re.sub(re.escape(form), "[redacted]", text, flags=re.IGNORECASE)
    text = KEY_PATTERN.sub("[redacted-key]", text)
    return BEARER_PATTERN.sub(r"\1[redacted]", text)


def redact_hex(text: str, also: list[str] | tuple = ()) -> str:
    """Also every run of 64 hex digits: for text a server wrote (an error echoing a key we do not know)."""
    return HEX_RUN.sub("[redacted-hex]", redact(text, also=also))


def escape_controls(text: str) -> str:
    """Newlines and other control characters as visible escapes (\\n, \\x1b): one record, one line."""
    return LOG_CONTROL.sub(lambda m: ESCAPES.get(m.group()) or ascii(m.group())[1:-1], text)


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


class EscapeControlsFilter(logging.Filter):
    """Escape control characters in the rendered message (the traceback keeps its lines): a key label
    or model name holding a newline cannot forge a separate log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if LOG_CONTROL.search(message):
            record.msg, record.args = escape_controls(message), None
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
