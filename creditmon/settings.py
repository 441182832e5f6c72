"""creditmon settings: one module, driven by the environment (or a `.env` file at the project root).

Every setting has a development-safe default so the app runs with no environment at all.
`.env.example` lists each one with a comment.
"""

import math
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# The environment wins over .env, so a deployment's real variables are never shadowed by a stale file.
load_dotenv(BASE_DIR / ".env", override=False)


def env(name: str, default: str = "") -> str:
    """A variable's value; an empty one (as copied from .env.example) counts as unset."""
    return os.environ.get(name, "").strip() or default


# Bad values are collected here and reported together, one line each, at the end of this file.
_problems: list[str] = []


def _bad(name: str, expected: str) -> None:
    shown = os.environ.get(name, "").strip()
    shown = repr(shown if len(shown) <= 40 else shown[:40] + "...")
    _problems.append(f"{name}={shown} is not valid: expected {expected}")


def envbool(name: str, default: str = "False") -> bool:
    value = env(name, default).lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        _bad(name, "true or false")
        value = default.lower()
    return value in ("1", "true", "yes", "on")


def envint(name: str, default: int, minimum: int | None = None) -> int:
    text = env(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        _bad(name, f"a whole number, e.g. {default}")
        return default
    if minimum is not None and value < minimum:
        _bad(name, f"a whole number of at least {minimum}")
        return default
    return value


def envfloat(name: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
    text = env(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        _bad(name, f"a plain number, e.g. {default:g}")
        return default
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"of at least {minimum:g}"
        _bad(name, f"a number {bounds}")
        return default
    return value


def envurl(name: str, default: str = "", example: str = "", schemes: tuple[str, ...] = ("http", "https")) -> str:
    """A URL with one of the schemes and a host; a bad one is reported without its (possibly secret) parts."""
    value = env(name, default)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in schemes and bool(parts.hostname or parts.scheme == "unix" and parts.path)
    except ValueError:
        valid = False
    if value and not valid:
        expected = f"a URL ({' or '.join(schemes)}) with a host, e.g. {example or default}"
        _problems.append(f"{name} is not valid: expected {expected}")
        return default
    return value


def envlist(name: str, default: str = "") -> list[str]:
    return [item for item in env(name, default).replace(",", " ").split() if item]


# --- Django core -----------------------------------------------------------------------------
DEBUG = envbool("DJANGO_DEBUG", "True")
# Published in the repository: fine on a laptop, refused with DEBUG off (and an error for `check --deploy`).
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-secret-key-change-me-in-production-0123456789"


def secret_key_from_file(name: str) -> str:
    """The key kept in an owner-only file, generated there on first use (concurrent starters agree on one)."""
    path = Path(name)
    if not path.exists():
        draft = path.with_name(f"{path.name}.{os.getpid()}.draft")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)  # atomic: fails if another process got there first, whose key then wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    if path.stat().st_mode & 0o077:
        _problems.append(f"DJANGO_SECRET_KEY_FILE {path} is readable by others: chmod 600 {path}")
    key = path.read_text().strip()
    if not key:
        _problems.append(f"DJANGO_SECRET_KEY_FILE {path} is empty: delete it and a new key is generated")
    return key


# DJANGO_SECRET_KEY, else DJANGO_SECRET_KEY_FILE (`make run` and the systemd unit set it), else the development key.
SECRET_KEY_FILE = env("DJANGO_SECRET_KEY_FILE")
try:
    SECRET_KEY = env("DJANGO_SECRET_KEY") or (SECRET_KEY_FILE and secret_key_from_file(SECRET_KEY_FILE))
except OSError as exc:
    _problems.append(f"DJANGO_SECRET_KEY_FILE {SECRET_KEY_FILE} cannot be used: {exc.strerror}")
    SECRET_KEY = ""
SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY
if not DEBUG and not env("DJANGO_SECRET_KEY") and not SECRET_KEY_FILE:
    _problems.append(
        "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is false: refusing to run on the development key; set it to "
        'a long random value: python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "localhost 127.0.0.1 [::1]")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "axes",
    "csp",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files answer here, with their own long cache headers; nothing below sees them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every dynamic answer is private, no-store unless its view says otherwise (pages, API, exports, admin).
    "monitoring.middleware.PrivateNoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    # Outside sessions and auth, so a database that fails there too gets the 503 page, not a 500.
    "monitoring.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every view requires a login unless marked @login_not_required (login page, probes, token APIs).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the "too many attempts" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "creditmon.urls"
WSGI_APPLICATION = "creditmon.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "monitoring.context_processors.creditmon",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# SQLite by default; DATABASE_URL (postgres://...) switches engines. SQLite is opened so that a web
# process and a worker never see "database is locked": IMMEDIATE transactions, a busy timeout, WAL.
try:
    DATABASES = {
        "default": dj_database_url.parse(
            env("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
            conn_max_age=envint("DATABASE_CONN_MAX_AGE", 0, minimum=0),
            # A kept connection is tested before a request reuses it: a restarted database costs no request.
            conn_health_checks=True,
        )
    }
except ValueError:  # its message repeats the URL, password included: name the scheme only
    _problems.append(
        f"DATABASE_URL with scheme {urlsplit(env('DATABASE_URL')).scheme or '(none)'!r} is not valid: expected "
        "sqlite:///path/to/db.sqlite3 or postgres://user:password@host:5432/name"
    )
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Login throttling (django-axes), on the site and admin logins alike: after LOGIN_FAILURE_LIMIT wrong passwords for
# one username from one address, that pair is refused for LOGIN_COOLOFF_MINUTES (each new try restarts the wait).
AUTHENTICATION_BACKENDS = ["monitoring.auth.LoginThrottleBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envfloat("LOGIN_COOLOFF_MINUTES", 15, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "monitoring.auth.locked_out"
AXES_CLIENT_IP_CALLABLE = "monitoring.audit.client_address"
LOGIN_REDIRECT_URL = "monitoring-health"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
USE_I18N = False
USE_TZ = True
TIME_ZONE = "UTC"
# Daily buckets and the dates shown on pages use this zone (OpenRouter's own buckets are UTC).
CREDITMON_TIME_ZONE = env("CREDITMON_TIME_ZONE", "UTC")
# ISO 8601 dates wherever Django formats one by default (the admin's detail pages, filters).
FORMAT_MODULE_PATH = ["creditmon.formats"]
try:
    ZoneInfo(CREDITMON_TIME_ZONE)
except (ValueError, ZoneInfoNotFoundError):
    _bad("CREDITMON_TIME_ZONE", "a time zone name such as UTC or Europe/Paris")
    CREDITMON_TIME_ZONE = "UTC"

# --- Static files: whitenoise, compressed and hashed ----------------------------------------
STATIC_URL = "static/"
# Where collectstatic writes (make run's release step): settable, so processes started side by side never share it.
STATIC_ROOT = Path(env("STATIC_ROOT", "")) if env("STATIC_ROOT", "") else BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Chart.js comes from the npm registry (package.json + lock), never from a CDN nor committed.
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
    # axe-core (the accessibility checker the browser tests run in each page), from npm the same way.
    ("vendor/axe-core", BASE_DIR / "node_modules" / "axe-core"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": env("STATICFILES_BACKEND", "whitenoise.storage.CompressedManifestStaticFilesStorage")},
}

# --- Security (production values come from the environment) ---------------------------------
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", "False")
SESSION_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", str(not DEBUG))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if envbool("DJANGO_BEHIND_PROXY", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp), on every page and the admin alike (Django 5.2's admin passes it, checked in
# Chromium by tests/browser/test_admin_csp.py): only the site's own scripts, styles and images, nothing inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- OpenRouter ------------------------------------------------------------------------------
OPENROUTER_API_KEY = env("OPENROUTER_API_KEY", "")
# More inference keys watched directly, "name=key" separated by spaces or commas (e.g. dev and prod).
OPENROUTER_API_KEYS = env("OPENROUTER_API_KEYS", "")
OPENROUTER_MANAGEMENT_KEY = env("OPENROUTER_MANAGEMENT_KEY", "")
# With the management key, also list (and log) disabled and expired keys found by GET /keys.
OPENROUTER_LIST_DISABLED_KEYS = envbool("OPENROUTER_LIST_DISABLED_KEYS", "False")
OPENROUTER_BASE_URL = envurl("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1").rstrip("/")
OPENROUTER_TIMEOUT = envfloat("OPENROUTER_TIMEOUT", 30.0, minimum=0.1)
OPENROUTER_MAX_RETRIES = envint("OPENROUTER_MAX_RETRIES", 2, minimum=0)
OPENROUTER_HTTP_REFERER = env("OPENROUTER_HTTP_REFERER", "https://github.com/creditmon/creditmon")
OPENROUTER_X_TITLE = env("OPENROUTER_X_TITLE", "creditmon")
OPENROUTER_TOPUP_URL = env("OPENROUTER_TOPUP_URL", "https://openrouter.ai/settings/credits")
# The dashboard's public address (e.g. https://creditmon.example.com): notifications link back to it.
SITE_URL = env("SITE_URL", "").rstrip("/")
OPENROUTER_KEYS_URL = "https://openrouter.ai/keys"

# --- Thresholds and forecasting --------------------------------------------------------------
OPENROUTER_CREDIT_THRESHOLD = envfloat("OPENROUTER_CREDIT_THRESHOLD", 10.0, minimum=0)
OPENROUTER_MIN_BALANCE = envfloat("OPENROUTER_MIN_BALANCE", 0.0)
BURN_RATE_WINDOW_DAYS = envint("BURN_RATE_WINDOW_DAYS", 7, minimum=1)
# Readings must span at least this long before a burn rate is shown (two checks 30 s apart say nothing).
BURN_RATE_MIN_SPAN_MINUTES = envint("BURN_RATE_MIN_SPAN_MINUTES", 60, minimum=1)
FORECAST_WARNING_DAYS = envfloat("FORECAST_WARNING_DAYS", 7, minimum=0)
FORECAST_CRITICAL_DAYS = envfloat("FORECAST_CRITICAL_DAYS", 2, minimum=0)
SPIKE_FACTOR = envfloat("SPIKE_FACTOR", 3.0, minimum=1)
SPIKE_MIN_USD = envfloat("SPIKE_MIN_USD", 5.0, minimum=0)
FAILURES_BEFORE_UNKNOWN = envint("FAILURES_BEFORE_UNKNOWN", 3, minimum=1)
ALERT_HYSTERESIS = envfloat("ALERT_HYSTERESIS", 0.05, minimum=0, maximum=1)
KEY_LIMIT_WARNING_PERCENT = envfloat("KEY_LIMIT_WARNING_PERCENT", 80, minimum=0, maximum=100)
KEY_LIMIT_CRITICAL_PERCENT = envfloat("KEY_LIMIT_CRITICAL_PERCENT", 95, minimum=0, maximum=100)
KEY_EXPIRY_WARNING_DAYS = envfloat("KEY_EXPIRY_WARNING_DAYS", 7, minimum=0)
MONTHLY_BUDGET = envfloat("MONTHLY_BUDGET", 0.0, minimum=0)  # 0 = no budget


def envpercents(name: str, default: str) -> list[float]:
    """Shares in percent, ascending (BUDGET_ALERT_PERCENTS=80,100); a bad list is reported, the default kept."""
    try:
        values = sorted({float(item) for item in envlist(name, default)})
    except ValueError:
        values = []
    if not values or any(not math.isfinite(v) or v <= 0 or v > 100 for v in values):
        _bad(name, f"percentages between 0 and 100, comma-separated, e.g. {default}")
        return sorted(float(item) for item in default.split(","))
    return values


# Shares of a budget layer's window spent that warn (the last one is critical), OpenRouter's Enterprise defaults.
BUDGET_ALERT_PERCENTS = envpercents("BUDGET_ALERT_PERCENTS", "80,100")

# The model advisor: a used model retiring within ADVISOR_EXPIRY_DAYS warns; the window of spend it weighs;
# how many like-for-like candidates each model lists; the share of the account's spend a swap must save
# before it is an optimisation worth a task.
ADVISOR_EXPIRY_DAYS = envint("ADVISOR_EXPIRY_DAYS", 30, minimum=0)
ADVISOR_WINDOW_DAYS = envint("ADVISOR_WINDOW_DAYS", 30, minimum=1)
ADVISOR_MAX_CANDIDATES = envint("ADVISOR_MAX_CANDIDATES", 5, minimum=1)
ADVISOR_SAVING_PERCENT = envfloat("ADVISOR_SAVING_PERCENT", 30, minimum=0, maximum=100)
# Auto top-up is on in OpenRouter: warn when the balance falls through the threshold and no credits arrive.
AUTO_TOPUP_EXPECTED = envbool("AUTO_TOPUP_EXPECTED", "False")

# --- Monitoring loop -------------------------------------------------------------------------
CHECK_INTERVAL_MINUTES = envint("CHECK_INTERVAL_MINUTES", 360, minimum=1)
# The light spend watch between checks (one GET /key per key): how often, 0 = off.
WATCH_INTERVAL_MINUTES = envint("WATCH_INTERVAL_MINUTES", 10, minimum=0)
# A runaway: over the last WATCH_WINDOW_MINUTES at least WATCH_MIN_USD spent, WATCH_FACTOR x the burn rate,
# and at that pace the money runs out within FORECAST_WARNING_DAYS.
WATCH_WINDOW_MINUTES = envint("WATCH_WINDOW_MINUTES", 60, minimum=1)
WATCH_FACTOR = envfloat("WATCH_FACTOR", 5.0, minimum=1)
WATCH_MIN_USD = envfloat("WATCH_MIN_USD", 1.0, minimum=0)
REMIND_INTERVAL_HOURS = envfloat("REMIND_INTERVAL_HOURS", 24, minimum=0.01)
NOTIFY_URLS = env("NOTIFY_URLS", "")
NOTIFY_MAX_ATTEMPTS = envint("NOTIFY_MAX_ATTEMPTS", 5, minimum=1)
HEARTBEAT_URL = envurl("HEARTBEAT_URL", example="https://hc-ping.com/<uuid>")
# Pinged instead when a run's checks failed; empty: HEARTBEAT_URL with healthchecks' "/fail" appended.
HEARTBEAT_FAIL_URL = envurl("HEARTBEAT_FAIL_URL", example="https://hc-ping.com/<uuid>/fail")
# A run killed mid-way is run again this long after its last sign of life (plus up to 30 s for the scheduler).
RUN_RETRY_SECONDS = envint("RUN_RETRY_SECONDS", 120, minimum=6)
# One figure bounds a run: every OpenRouter call of a monitoring run ends by this deadline (a key not checked by
# then is a failed row with the reason); django-q2's task timeout and the lease's longest hold follow from it.
RUN_DEADLINE_SECONDS = envint("RUN_DEADLINE_SECONDS", 240, minimum=5)
# The run's recording, alerts and notifications after its calls: the task timeout is the deadline plus this.
RUN_TIMEOUT_SECONDS = RUN_DEADLINE_SECONDS + max(RUN_DEADLINE_SECONDS // 4, 10)
# How many keys a run checks, and asks /activity for, at once (independent HTTP calls in a thread pool).
RUN_CONCURRENCY = envint("RUN_CONCURRENCY", 4, minimum=1)
RETENTION_DAYS = envint("RETENTION_DAYS", 0, minimum=0)  # 0 = keep every raw row

# --- Machine access --------------------------------------------------------------------------
METRICS_TOKEN = env("METRICS_TOKEN", "")
# /metrics gives per-key series to the worst this many keys; the rest are counted by level (10,000 listed keys).
METRICS_MAX_KEYS = envint("METRICS_MAX_KEYS", 500, minimum=1)
# Up to this many watched keys every page builds each key's status live; beyond, the listed keys are ordered,
# counted and searched by the figures the last check stored, and only the page shown is built live.
STATUS_LIVE_KEYS = envint("STATUS_LIVE_KEYS", 200, minimum=1)
HEALTH_KEYS_PER_PAGE = envint("HEALTH_KEYS_PER_PAGE", 50, minimum=1)  # System Health's table of many keys
API_TOKEN = env("API_TOKEN", "")
# May also act (acknowledge, snooze, agent tasks) over the API and /mcp.
API_OPERATOR_TOKEN = env("API_OPERATOR_TOKEN", "")
# "Check now" and "Send test": at most this many per person per minute (0: no limit).
ACTION_LIMIT_PER_MINUTE = envint("ACTION_LIMIT_PER_MINUTE", 3, minimum=0)

# --- Agent tasks -----------------------------------------------------------------------------
# Each created, updated and closed task is POSTed here as JSON, signed with AGENT_WEBHOOK_SECRET.
AGENT_WEBHOOK_URL = envurl("AGENT_WEBHOOK_URL", example="https://agents.example.com/creditmon")
AGENT_WEBHOOK_SECRET = env("AGENT_WEBHOOK_SECRET", "")
AGENT_WEBHOOK_TIMEOUT = envfloat("AGENT_WEBHOOK_TIMEOUT", 5.0, minimum=0.1)  # a dead receiver never holds a check
AGENT_TASK_CLAIM_MINUTES = envint("AGENT_TASK_CLAIM_MINUTES", 60, minimum=1)  # an expired claim is open again

# Demo mode: the built-in simulated OpenRouter stands in for the real one (set by `make run` without a key).
CREDITMON_DEMO = envbool("CREDITMON_DEMO", "False")

# --- django-q2 -------------------------------------------------------------------------------
REDIS_URL = envurl("REDIS_URL", example="redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))
Q_CLUSTER = {
    "name": "creditmon",
    "workers": envint("Q_WORKERS", 4 if REDIS_URL else 1, minimum=1),
    # A run ends its calls by RUN_DEADLINE_SECONDS; a task running past this is stopped (recorded, re-run soon)...
    "timeout": RUN_TIMEOUT_SECONDS,
    # ...and only retried after this (must stay above timeout, or django-q2 warns and double-runs).
    # A worker killed mid-task: the ORM broker redelivers after `retry`, Redis never does; either way the
    # schedule's retry point (monitoring/schedule.py) starts the run again within RUN_RETRY_SECONDS + 30 s.
    "retry": RUN_TIMEOUT_SECONDS + 60,
    # Bounded attempts, and failures acknowledged, so a broken task is not retried forever.
    "max_attempts": 2,
    "ack_failures": True,
    # After downtime run a missed schedule once, not once per missed interval.
    "catch_up": False,
    "save_limit": 250,
    # One 6-hourly job, a watch and the odd Check now: a worker is replaced after this many tasks, or once its
    # peak memory passes Q_MAX_RSS_KB, so a long-lived worker never keeps what one large check grew it to.
    "recycle": envint("Q_RECYCLE", 200, minimum=1),
    "max_rss": envint("Q_MAX_RSS_KB", 200_000, minimum=50_000),
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging: console plus a rotating file; API keys are scrubbed from every record ---------
LOG_DIR = Path(env("CREDITMON_LOG_DIR") or BASE_DIR / "logs")
LOG_LEVEL = env("CREDITMON_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    _bad("CREDITMON_LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
    LOG_LEVEL = "INFO"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "monitoring.logredact.RedactSecretsFilter"},
        "escape": {"()": "monitoring.logredact.EscapeControlsFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact", "escape"]},
        "file": {
            "class": "monitoring.logredact.SafeRotatingFileHandler",
            "filename": str(LOG_DIR / "creditmon.log"),
            "maxBytes": 5 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "filters": ["redact", "escape"],
        },
    },
    "root": {"handlers": ["console", "file"], "level": "WARNING"},
    "loggers": {
        "monitoring": {"handlers": ["console", "file"], "level": LOG_LEVEL, "propagate": False},
        "django-q": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        # A cut or broken header block is the client's one-line failure; not urllib3's traceback as well.
        "urllib3.connection": {"handlers": ["console", "file"], "level": "ERROR", "propagate": False},
    },
}

# --- Keep this last: every bad value above, one line each, then no start (no traceback) -----
# Exit 3: UNKNOWN for a monitoring plugin, and gunicorn halts on it ("Worker failed to boot") instead of respawning.
if _problems:
    sys.stderr.write("".join(f"creditmon: {line}\n" for line in _problems))
    sys.exit(3)
