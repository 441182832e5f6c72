"""creditmon settings: one module, driven by the environment (or a `.env` file at the project root).

Every setting has a development-safe default so the app runs with no environment at all.
`.env.example` lists each one with a comment.
"""

import os
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# The environment wins over .env, so a deployment's real variables are never shadowed by a stale file.
load_dotenv(BASE_DIR / ".env", override=False)


def env(name: str, default: str = "") -> str:
    """A variable's value; an empty one (as copied from .env.example) counts as unset."""
    return os.environ.get(name, "").strip() or default


def envbool(name: str, default: str = "False") -> bool:
    return env(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    return int(env(name) or default)


def envfloat(name: str, default: float) -> float:
    return float(env(name) or default)


def envlist(name: str, default: str = "") -> list[str]:
    return [item for item in env(name, default).replace(",", " ").split() if item]


# --- Django core -----------------------------------------------------------------------------
DEBUG = envbool("DJANGO_DEBUG", "True")
SECRET_KEY = env("DJANGO_SECRET_KEY") or "dev-only-insecure-secret-key-change-me-in-production-0123456789"
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
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every view requires a login unless marked @login_not_required (login page, probes, token APIs).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "monitoring.middleware.ContentSecurityPolicyMiddleware",
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
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 0),
    )
}
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
LOGIN_REDIRECT_URL = "monitoring-health"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
USE_I18N = False
USE_TZ = True
TIME_ZONE = "UTC"
# Daily buckets and the dates shown on pages use this zone (OpenRouter's own buckets are UTC).
CREDITMON_TIME_ZONE = env("CREDITMON_TIME_ZONE", "UTC")

# --- Static files: whitenoise, compressed and hashed ----------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Chart.js comes from the npm registry (package.json + lock), never from a CDN nor committed.
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": env("STATICFILES_BACKEND", "whitenoise.storage.CompressedManifestStaticFilesStorage")},
}

# --- Security (production values come from the environment) ---------------------------------
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", "False")
SESSION_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", str(not DEBUG))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if envbool("DJANGO_BEHIND_PROXY", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# --- OpenRouter ------------------------------------------------------------------------------
OPENROUTER_API_KEY = env("OPENROUTER_API_KEY", "")
# More inference keys watched directly, "name=key" separated by spaces or commas (e.g. dev and prod).
OPENROUTER_API_KEYS = env("OPENROUTER_API_KEYS", "")
OPENROUTER_MANAGEMENT_KEY = env("OPENROUTER_MANAGEMENT_KEY", "")
# With the management key, also list (and log) disabled and expired keys found by GET /keys.
OPENROUTER_LIST_DISABLED_KEYS = envbool("OPENROUTER_LIST_DISABLED_KEYS", "False")
OPENROUTER_BASE_URL = env("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1").rstrip("/")
OPENROUTER_TIMEOUT = envfloat("OPENROUTER_TIMEOUT", 30.0)
OPENROUTER_MAX_RETRIES = envint("OPENROUTER_MAX_RETRIES", 2)
OPENROUTER_HTTP_REFERER = env("OPENROUTER_HTTP_REFERER", "https://github.com/creditmon/creditmon")
OPENROUTER_X_TITLE = env("OPENROUTER_X_TITLE", "creditmon")
OPENROUTER_TOPUP_URL = env("OPENROUTER_TOPUP_URL", "https://openrouter.ai/settings/credits")
OPENROUTER_KEYS_URL = "https://openrouter.ai/keys"

# --- Thresholds and forecasting --------------------------------------------------------------
OPENROUTER_CREDIT_THRESHOLD = envfloat("OPENROUTER_CREDIT_THRESHOLD", 10.0)
OPENROUTER_MIN_BALANCE = envfloat("OPENROUTER_MIN_BALANCE", 0.0)
BURN_RATE_WINDOW_DAYS = envint("BURN_RATE_WINDOW_DAYS", 7)
FORECAST_WARNING_DAYS = envfloat("FORECAST_WARNING_DAYS", 7)
FORECAST_CRITICAL_DAYS = envfloat("FORECAST_CRITICAL_DAYS", 2)
SPIKE_FACTOR = envfloat("SPIKE_FACTOR", 3.0)
SPIKE_MIN_USD = envfloat("SPIKE_MIN_USD", 5.0)
FAILURES_BEFORE_UNKNOWN = envint("FAILURES_BEFORE_UNKNOWN", 3)
ALERT_HYSTERESIS = envfloat("ALERT_HYSTERESIS", 0.05)
KEY_LIMIT_WARNING_PERCENT = envfloat("KEY_LIMIT_WARNING_PERCENT", 80)
KEY_LIMIT_CRITICAL_PERCENT = envfloat("KEY_LIMIT_CRITICAL_PERCENT", 95)
KEY_EXPIRY_WARNING_DAYS = envfloat("KEY_EXPIRY_WARNING_DAYS", 7)
MONTHLY_BUDGET = envfloat("MONTHLY_BUDGET", 0.0)  # 0 = no budget
# Auto top-up is on in OpenRouter: warn when the balance falls through the threshold and no credits arrive.
AUTO_TOPUP_EXPECTED = envbool("AUTO_TOPUP_EXPECTED", "False")

# --- Monitoring loop -------------------------------------------------------------------------
CHECK_INTERVAL_MINUTES = envint("CHECK_INTERVAL_MINUTES", 360)
REMIND_INTERVAL_HOURS = envfloat("REMIND_INTERVAL_HOURS", 24)
NOTIFY_URLS = env("NOTIFY_URLS", "")
NOTIFY_MAX_ATTEMPTS = envint("NOTIFY_MAX_ATTEMPTS", 5)
HEARTBEAT_URL = env("HEARTBEAT_URL", "")
RETENTION_DAYS = envint("RETENTION_DAYS", 0)  # 0 = keep every raw row

# --- Machine access --------------------------------------------------------------------------
METRICS_TOKEN = env("METRICS_TOKEN", "")
API_TOKEN = env("API_TOKEN", "")

# Demo mode: the built-in simulated OpenRouter stands in for the real one (set by `make run` without a key).
CREDITMON_DEMO = envbool("CREDITMON_DEMO", "False")

# --- django-q2 -------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "")
Q_CLUSTER = {
    "name": "creditmon",
    "workers": envint("Q_WORKERS", 4 if REDIS_URL else 1),
    # A check takes seconds; a task running longer than this is killed...
    "timeout": 300,
    # ...and only retried after this (must stay above timeout, or django-q2 warns and double-runs).
    "retry": 360,
    # Bounded attempts, and failures acknowledged, so a broken task is not retried forever.
    "max_attempts": 2,
    "ack_failures": True,
    # After downtime run a missed schedule once, not once per missed interval.
    "catch_up": False,
    "save_limit": 250,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging: console plus a rotating file; API keys are scrubbed from every record ---------
LOG_DIR = Path(env("CREDITMON_LOG_DIR") or BASE_DIR / "logs")
LOG_LEVEL = env("CREDITMON_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "monitoring.logredact.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        "file": {
            "class": "monitoring.logredact.SafeRotatingFileHandler",
            "filename": str(LOG_DIR / "creditmon.log"),
            "maxBytes": 5 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console", "file"], "level": "WARNING"},
    "loggers": {
        "monitoring": {"handlers": ["console", "file"], "level": LOG_LEVEL, "propagate": False},
        "django-q": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
    },
}
