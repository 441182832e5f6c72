"""The one HTTP seam to OpenRouter: fetch, validate, and return plain snapshots.

Knows HTTP and the API's schema, not the database. Every failure is an `OpenRouterError` whose
message is one line a person can act on, and never contains the key.

Hostile answers are stopped here:
- Time: one deadline per request, connect to last byte (`OPENROUTER_TIMEOUT`), enforced by a
  watchdog that shuts the socket down, so a server dripping one byte at a time cannot hold a
  check; one call with its retries and their waits ends within TIMEOUT x (1 + MAX_RETRIES).
- Redirects are never followed: a 3xx is a failed check naming the host it pointed to.
- Numbers: finite, not negative, at most MAX_USD; a key's limit_remaining within
  [-overspend tolerance, limit] (see `_plausible_remaining`). Anything else is a failed check.
- Text: every string is stripped of NUL, control characters and invisible format characters (Unicode Cf,
  such as the right-to-left override U+202E) and cut to its column's length
  (the *_LENGTH constants match monitoring/models.py), so SQLite and PostgreSQL store the same.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import re
import socket
import threading
import time
import unicodedata
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .logredact import redact, redact_hex

MAX_BODY_BYTES = 2 * 1024 * 1024  # /keys pages and /activity stay far below this
KEYS_PAGE_SIZE = 100
MAX_RETRY_AFTER = 30.0  # seconds: longer waits are reported, not slept through
KEYS_URL = "https://openrouter.ai/keys"

# Plausibility: the largest money figure believed (USD). Real accounts are many orders below it.
MAX_USD = 1e9
# A key may overshoot its cap a little (requests in flight when it ran out): limit_remaining down to
# -max(OVERSPEND_MIN_USD, OVERSPEND_SHARE x limit) is a reading, anything lower is a broken answer.
OVERSPEND_MIN_USD = 1.0
OVERSPEND_SHARE = 0.1
FLOAT_NOISE = 1e-6  # -0.0000001 of usage is rounding, not a negative figure
MAX_COUNT = 10**15  # tokens per day: beyond this is not a count
MAX_REQUESTS = 2**31 - 1  # requests per day: Activity.requests is a 32-bit column on PostgreSQL

# Column lengths of what is stored (monitoring/models.py; tests/test_faults_client.py keeps them equal).
LABEL_LENGTH = 200  # ApiKey.label / CreditLog.label
NAME_LENGTH = 300  # ApiKey.name: people give keys long names (250 characters seen)
LIMIT_RESET_LENGTH = 20  # ApiKey.limit_reset / CreditLog.limit_reset
MODEL_LENGTH = 200  # Activity.model / Activity.model_permaslug
ENDPOINT_LENGTH = 100  # Activity.endpoint_id
PROVIDER_LENGTH = 100  # Activity.provider_name
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")  # OpenRouter's key id: the SHA-256 hex of the key
# NUL and every control character (C0, DEL, C1) plus the Unicode line/paragraph separators.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MODELS_MAX_BYTES = 8 * 1024 * 1024  # the whole catalogue (about 350 models with descriptions) is ~1.5 MB
MODELS_MAX_PAGES = 50  # a `links.next` chain longer than this is a loop, not a catalogue
MAX_PRICE = Decimal("1")  # USD per token: $1,000,000 per million tokens is no price, it is a broken answer
PRICE_FIELDS = ("prompt", "completion", "request", "internal_reasoning", "input_cache_read", "input_cache_write")
CAPABILITY_LENGTH = 60  # one supported parameter or modality
MAX_CONTEXT = 10**9  # tokens of context: beyond this is not a context length
MAX_JSON_DEPTH = 32  # deeper nesting in an answer is cut when cleaning (nothing we read is that deep)


def clean_text(value: str, max_length: int | None = None) -> str:
    """Text safe for any database column, page and log line: NUL dropped, other control characters become
    spaces (a newline cannot forge a log line), invisible format characters (Unicode category Cf: bidi
    overrides such as U+202E, zero-width spaces) dropped (a name cannot read backwards), then cut to the column."""
    if CONTROL_CHARS.search(value):
        value = CONTROL_CHARS.sub(" ", value.replace("\x00", ""))
    if not value.isascii():  # every Cf character is outside ASCII: the common case costs one scan
        value = "".join(ch for ch in value if unicodedata.category(ch) != "Cf")
    return value if max_length is None else value[:max_length]


def clean_json(value: Any, depth: int = 0) -> Any:
    """A decoded answer with every string (keys too) cleaned, so raw JSON stores NUL-free everywhere."""
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_JSON_DEPTH and isinstance(value, (dict, list)):
        return None
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, depth + 1) for v in value]
    return value


def _amount(value: float) -> str:
    """A number for a one-line message: -1e+300, never 300 digits."""
    return f"{value:.6g}"


class OpenRouterError(Exception):
    """A check could not be made. `status` is the HTTP status when there was one."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None, retryable: bool = False
    ):
        message = clean_text(message)  # stored, shown and logged: one line, whatever the server sent
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


def key_hash(token: str) -> str:
    """OpenRouter identifies a key by the SHA-256 of its text; so do we, and store nothing else."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class KeySnapshot:
    """GET /key, as plain values."""

    label: str
    usage: float
    limit: float | None
    limit_remaining: float | None
    limit_reset: str | None
    usage_daily: float | None = None
    usage_weekly: float | None = None
    usage_monthly: float | None = None
    byok_usage: float | None = None
    is_free_tier: bool | None = None
    is_management_key: bool = False
    expires_at: datetime | None = None
    rate_limit: dict | None = None
    raw: dict = field(default_factory=dict)
    workspace_id: str = ""
    budgets: list[KeyBudget] = field(default_factory=list)
    effective_budget: KeyBudget | None = None
    free_requests: FreeRequests | None = None


@dataclass(frozen=True)
class KeyBudget:
    """One layer of `budgets[]` on GET /key: a guardrail, a workspace or member budget, or the key's own limit."""

    scope: str
    budget_id: str | None
    guardrail_id: str | None
    include_byok: bool
    limit_usd: float
    spend_usd: float
    remaining_usd: float
    reset_interval: str | None
    resets_at: datetime | None

    @property
    def identity(self) -> tuple[str, str, str]:
        """The same layer across readings and resets."""
        return (self.scope, self.budget_id or "", self.guardrail_id or "")


@dataclass(frozen=True)
class FreeRequests:
    """`free_model_daily_requests`: the account's daily quota of requests to `:free` models (resets 00:00 UTC)."""

    limit: int
    remaining: int
    used: int


@dataclass(frozen=True)
class Workspace:
    """One item of GET /workspaces."""

    id: str
    name: str


@dataclass
class AccountCredits:
    """GET /credits: the account balance."""

    total_credits: float
    total_usage: float

    @property
    def balance(self) -> float:
        return self.total_credits - self.total_usage


@dataclass
class ListedKey:
    """One item of GET /keys."""

    hash: str
    name: str
    label: str
    disabled: bool
    usage: float
    limit: float | None
    limit_remaining: float | None
    limit_reset: str | None
    usage_daily: float | None
    usage_weekly: float | None
    usage_monthly: float | None
    expires_at: datetime | None
    created_at: datetime | None
    raw: dict = field(default_factory=dict)
    byok_usage: float | None = None
    workspace_id: str = ""
    last_used_at: datetime | None = None
    reports_last_use: bool = False  # the item has `last_used_at` (null then means never used)


@dataclass
class ListedModel:
    """One item of GET /models (the public catalogue): prices in USD per token, as Decimals."""

    id: str
    name: str
    context_length: int | None
    input_modalities: list[str]
    output_modalities: list[str]
    supported_parameters: list[str]
    expiration_date: date | None
    prices: dict[str, Decimal | None]  # PRICE_FIELDS -> price, None when not given


@dataclass
class Catalogue:
    """Every page of GET /models: the models whose figures passed, and why the others did not."""

    models: list[ListedModel]
    skipped: list[str]  # "model id: reason", one per model left out
    total_count: int | None = None


# --- validation helpers: a hostile or broken body is rejected with a clear reason ---------------


def _unexpected(reason: str) -> OpenRouterError:
    return OpenRouterError(f"OpenRouter sent an unexpected response: {reason}")


def _implausible(reason: str) -> OpenRouterError:
    return OpenRouterError(f"OpenRouter sent an implausible answer, not recorded as a reading: {reason}")


def _number(data: dict, name: str, nullable: bool = False, required: bool = True) -> float | None:
    value = data.get(name)
    if value is None:
        if nullable or (not required and name not in data):
            return None
        raise _unexpected(f"`{name}` is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _unexpected(f"`{name}` is {type(value).__name__}, not a number")
    try:
        value = float(value)  # an integer of 400 digits is not a float either
    except OverflowError:
        raise _implausible(f"`{name}` is beyond ${MAX_USD:,.0f}") from None
    if not math.isfinite(value):
        raise _unexpected(f"`{name}` is not a finite number")
    return value


def _money(data: dict, name: str, nullable: bool = False, required: bool = True) -> float | None:
    """A dollar figure that cannot be negative: finite, >= 0 (rounding aside) and at most MAX_USD."""
    value = _number(data, name, nullable, required)
    if value is None:
        return None
    if value < -FLOAT_NOISE:
        raise _implausible(f"`{name}` is {_amount(value)} (negative)")
    if value > MAX_USD:
        raise _implausible(f"`{name}` is {_amount(value)} (beyond ${MAX_USD:,.0f})")
    return max(value, 0.0)


def _count(data: dict, name: str, ceiling: int = MAX_COUNT) -> int:
    """Tokens or requests: a whole number, not negative, not absurd."""
    value = _number(data, name, required=False) or 0.0
    if value < 0 or value > ceiling:
        raise _implausible(f"`{name}` is {_amount(value)}")
    return int(value)


def _plausible_remaining(data: dict, limit: float | None) -> float | None:
    """limit_remaining within [-tolerance, limit]: a small overshoot past the cap is real, -1e300 is not."""
    value = _number(data, "limit_remaining", nullable=True)
    if value is None:
        return None
    tolerance = max(OVERSPEND_MIN_USD, OVERSPEND_SHARE * (limit or 0.0))
    if value < -tolerance:
        raise _implausible(f"`limit_remaining` is {_amount(value)} (below the overspend tolerance of -{tolerance:g})")
    ceiling = limit if limit is not None else MAX_USD
    if value > ceiling + 0.01:
        what = f"above the limit of {_amount(limit)}" if limit is not None else f"beyond ${MAX_USD:,.0f}"
        raise _implausible(f"`limit_remaining` is {_amount(value)} ({what})")
    return value


def _text(data: dict, name: str, max_length: int, nullable: bool = True) -> str | None:
    value = data.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise _unexpected(f"`{name}` is not text")
    return clean_text(value, max_length)


def _key_hash(data: dict) -> str:
    value = data.get("hash")
    text = value.strip().lower() if isinstance(value, str) else ""
    if not HASH_PATTERN.fullmatch(text):
        raise _unexpected("a listed key's `hash` is not 64 hex digits")
    return text


def _bool(data: dict, name: str) -> bool | None:
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise _unexpected(f"`{name}` is not true/false")


def _datetime(data: dict, name: str) -> datetime | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value)[:40].replace("Z", "+00:00"))
    except ValueError:
        raise _unexpected(f"`{name}` is not a date") from None


BUDGET_SCOPES = {"key_limit", "api_key", "member", "workspace", "workspace_default_key", "workspace_default_member"}
RESET_INTERVALS = {"daily", "weekly", "monthly"}
ID_LENGTH = 100  # LimitReading.budget_id / guardrail_id / ApiKey.workspace_id


def _budget(item: Any, where: str) -> KeyBudget:
    """One KeyBudget, every field required (SDK 1.3.84); remaining may be negative a little (overspend)."""
    if not isinstance(item, dict):
        raise _unexpected(f"`{where}` is not an object")
    scope = item.get("scope")
    if scope not in BUDGET_SCOPES:
        raise _unexpected(f"`{where}.scope` is not a known budget scope")
    for name in ("budget_id", "guardrail_id", "reset_interval", "resets_at", "include_byok"):
        if name not in item:
            raise _unexpected(f"`{where}.{name}` is missing")
    interval = _text(item, "reset_interval", LIMIT_RESET_LENGTH)
    if interval is not None and interval not in RESET_INTERVALS:
        raise _unexpected(f"`{where}.reset_interval` is not daily, weekly, monthly or null")
    try:
        limit = _money(item, "limit_usd")
        spend = _money(item, "spend_usd")
        remaining = _number(item, "remaining_usd")
    except OpenRouterError as exc:
        raise OpenRouterError(f"{exc.message} (in `{where}`)") from None
    tolerance = max(OVERSPEND_MIN_USD, OVERSPEND_SHARE * limit)
    if remaining < -tolerance or remaining > limit + 0.01:
        bounds = f"outside -{tolerance:g}..{_amount(limit)}"
        raise _implausible(f"`{where}.remaining_usd` is {_amount(remaining)} ({bounds})")
    resets_at = _datetime(item, "resets_at")
    if interval is not None and resets_at is None:
        raise _unexpected(f"`{where}` resets {interval} but has no `resets_at`")
    return KeyBudget(
        scope=scope,
        budget_id=_text(item, "budget_id", ID_LENGTH),
        guardrail_id=_text(item, "guardrail_id", ID_LENGTH),
        include_byok=bool(_bool(item, "include_byok")),
        limit_usd=limit,
        spend_usd=spend,
        remaining_usd=remaining,
        reset_interval=interval,
        resets_at=resets_at,
    )


def _budgets(data: dict) -> tuple[list[KeyBudget], KeyBudget | None]:
    """`budgets[]` and `effective_budget`; absent (an older answer) reads as no layers, never invented ones."""
    items = data.get("budgets")
    if items is None:
        return [], None
    if not isinstance(items, list):
        raise _unexpected("`budgets` is not a list")
    if len(items) > 50:
        raise _implausible(f"`budgets` has {len(items)} layers")
    budgets = [_budget(item, f"budgets[{n}]") for n, item in enumerate(items)]
    effective = data.get("effective_budget")
    return budgets, None if effective is None else _budget(effective, "effective_budget")


def _free_requests(data: dict) -> FreeRequests | None:
    quota = data.get("free_model_daily_requests")
    if quota is None:
        return None
    if not isinstance(quota, dict):
        raise _unexpected("`free_model_daily_requests` is not an object")
    limit = _count(quota, "limit", MAX_REQUESTS)
    remaining = _count(quota, "remaining", MAX_REQUESTS)
    used = _count(quota, "used", MAX_REQUESTS)
    if remaining > limit:
        raise _implausible(f"`free_model_daily_requests.remaining` is {remaining}, above its limit of {limit}")
    return FreeRequests(limit, remaining, used)


BUDGET_WORDS = re.compile(r"budget|limit|guardrail", re.IGNORECASE)  # a 403 naming one: the key is refused now
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _rate_limit_text(response: requests.Response, payload: Any) -> str:
    """The X-RateLimit-* figures of a 429 (the response's headers, else those echoed in error.metadata)."""
    echoed = {}
    if isinstance(payload, dict):
        meta = (payload.get("error") or {}).get("metadata") if isinstance(payload.get("error"), dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("headers"), dict):
            echoed = meta["headers"]
    found = []
    for name in RATE_LIMIT_HEADERS:
        value = response.headers.get(name) or echoed.get(name)
        if value is None:
            continue
        value = clean_text(str(value), 20)
        if name.endswith("Reset") and value.isdigit():
            try:  # epoch milliseconds as observed (seconds when small)
                stamp = int(value) / (1000 if int(value) > 10**11 else 1)
                value = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
            except (OverflowError, ValueError, OSError):
                pass
        found.append(f"{name.removeprefix('X-RateLimit-').lower()} {value}")
    return f" ({', '.join(found)})" if found else ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _where(location: str) -> str:
    """Where a redirect pointed, without its path or query (they may carry tokens)."""
    try:
        parts = urllib3.util.parse_url(clean_text(location))
    except (ValueError, urllib3.exceptions.LocationParseError):
        return "an unreadable address"
    if not parts.host:
        return "another path on the same host"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'http'}://{clean_text(parts.host, 100)}{port}"


# --- transport: one deadline per request, held by a watchdog -----------------------------------

_exchange = threading.local()  # the watchdog of the request this thread is making, if any


# The monotonic time by which every call of the current run must end (None outside a run): one deadline per run.
RUN_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("run_deadline", default=None)


@contextmanager
def run_deadline(seconds: float):
    """Every Client made inside ends its calls within `seconds` from now, together (threads get a copied context)."""
    token = RUN_DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        RUN_DEADLINE.reset(token)


def submit_in_context(pool: ThreadPoolExecutor, func, *args) -> Future:
    """Run func in the pool with this thread's context, so the run's deadline reaches its calls."""
    return pool.submit(contextvars.copy_context().run, func, *args)


def past_deadline_error(seconds: float) -> OpenRouterError:
    return OpenRouterError(
        f"Not checked: the run's deadline of {seconds:g} s (RUN_DEADLINE_SECONDS) had passed; it is checked next run"
    )


def _shutdown(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also under TLS: the blocked read in the other thread then returns.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """Shuts a request's sockets down at its deadline.

    requests' own timeout is per socket operation: a server sending one header byte every 2 s never
    trips it. Every socket the request uses is registered here; at the deadline a timer thread shuts
    them down and the blocked read fails at once.
    """

    def __init__(self, seconds: float):
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        _exchange.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _exchange.watchdog = None

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _watch(sock: socket.socket | None) -> None:
    watchdog = getattr(_exchange, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(sock)


class _WatchedConnection:
    """Registers the connection's socket with the current watchdog: a new one as soon as it is
    connected (before a TLS handshake), a kept-alive one before the response is read."""

    def _new_conn(self):
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def getresponse(self, *args, **kwargs):
        _watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class EnvironmentOnce(requests.Session):
    """A session that reads the environment's proxies (NO_PROXY too) and CA bundle once per host, not on every request:
    requests walks every environment variable on each call (about 0.5 ms, a third of a call to the simulator;
    ten thousand keys make ten thousand calls a run). A client's session lives for one run, so a changed
    environment is still read at the next one."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        scheme, host = urlsplit(url)[:2]
        key = (scheme, host, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        found = self._environment[key]
        return {**found, "proxies": dict(found.get("proxies") or {})}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections answer to the request's watchdog (proxied ones too)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(WATCHED_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = dict(WATCHED_POOLS)
        return manager


class Client:
    """A small OpenRouter client.

    Each request, connect to last byte, ends within `timeout` seconds; one call with its retries
    (429/5xx/refused connections, after Retry-After or a short backoff) ends within
    `timeout x (1 + max_retries)` (name resolution aside, which the system resolver bounds).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://openrouter.ai/api/v1",
        timeout: float = 30.0,
        max_retries: int = 2,
        referer: str = "",
        title: str = "",
        session: requests.Session | None = None,
        public: bool = False,
    ):
        if not api_key and not public:
            raise OpenRouterError("OPENROUTER_API_KEY not set: add it to .env or the environment")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.session = session or EnvironmentOnce()
        adapter = WatchedAdapter()
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # A public endpoint (the model catalogue) is asked without any key: nothing to leak.
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.headers["Accept"] = "application/json"
        if referer:
            self.headers["HTTP-Referer"] = referer
        if title:
            self.headers["X-Title"] = title

    @classmethod
    def from_settings(cls, api_key: str | None = None, public: bool = False) -> Client:
        from django.conf import settings

        return cls(
            "" if public else api_key if api_key is not None else settings.OPENROUTER_API_KEY,
            public=public,
            base_url=settings.OPENROUTER_BASE_URL,
            timeout=settings.OPENROUTER_TIMEOUT,
            max_retries=settings.OPENROUTER_MAX_RETRIES,
            referer=settings.OPENROUTER_HTTP_REFERER,
            title=settings.OPENROUTER_X_TITLE,
        )

    @property
    def total_timeout(self) -> float:
        """The bound of one call, its retries and their waits included."""
        return self.timeout * (1 + max(0, self.max_retries))

    # --- transport ---------------------------------------------------------------------------

    def get_json(self, path: str, params: dict | None = None, max_bytes: int = MAX_BODY_BYTES) -> dict:
        """GET a path, retrying transient failures within total_timeout, and return the decoded JSON object."""
        call_deadline = time.monotonic() + self.total_timeout
        run = RUN_DEADLINE.get()
        if run is not None:
            if run[0] - time.monotonic() < 0.5:
                raise past_deadline_error(run[1])
            call_deadline = min(call_deadline, run[0])
        attempt = 0
        while True:
            try:
                budget = min(self.timeout, call_deadline - time.monotonic())
                return self._get_once(path, params, budget, max_bytes)
            except OpenRouterError as exc:
                wait = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
                # Only 429/5xx and refused connections are worth a second try; a timeout already
                # spent the whole budget and a malformed body will not fix itself in a second.
                # A retry that could not finish before the call's deadline is not started.
                left = call_deadline - time.monotonic() - wait
                if not exc.retryable or attempt >= self.max_retries or wait > MAX_RETRY_AFTER or left < 1.0:
                    raise
                attempt += 1
                time.sleep(wait)

    def _get_once(
        self, path: str, params: dict | None, budget: float | None = None, max_bytes: int = MAX_BODY_BYTES
    ) -> dict:
        url = f"{self.base_url}{path}"
        budget = self.timeout if budget is None else budget
        too_slow = f"OpenRouter did not answer within {self._limit_words(budget)}: retry in a few minutes"
        deadline = time.monotonic() + budget
        with _Watchdog(budget) as watchdog:
            try:
                response = self.session.get(
                    url,
                    headers=self.headers,
                    params=params,
                    timeout=(min(10.0, budget), budget),
                    stream=True,
                    allow_redirects=False,  # a redirect is reported, never followed (nor the key sent on)
                )
            except requests.Timeout:
                raise OpenRouterError(too_slow) from None
            except requests.RequestException as exc:
                if watchdog.fired:
                    raise OpenRouterError(too_slow) from None
                reason = redact(type(exc).__name__)
                raise OpenRouterError(
                    f"Cannot reach OpenRouter at {self.base_url} ({reason}): check the network", retryable=True
                ) from None
            with response:
                body = self._read_body(response, deadline, budget, max_bytes)
            if watchdog.fired:  # cut mid-headers, http.client takes the end of the stream for their end
                raise OpenRouterError(
                    too_slow.replace("did not answer", "did not finish answering") if body else too_slow
                )
        if 300 <= response.status_code < 400:
            where = _where(response.headers.get("Location", ""))
            raise OpenRouterError(
                f"OpenRouter API error ({response.status_code}): a redirect to {where}, not followed; "
                "check OPENROUTER_BASE_URL (a proxy or a moved API?)",
                response.status_code,
            )
        if response.status_code != 200:
            raise self._http_error(response, body)
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type:
            kind = clean_text(content_type.split(";")[0], 100) or "no content type"
            raise _unexpected(f"{kind} instead of JSON (a proxy or outage page?)")
        try:
            decoded = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            reason = str(exc).split(":")[0] if "not valid JSON" in str(exc) else "malformed JSON"
            raise _unexpected(reason) from None
        if not isinstance(decoded, dict):
            raise _unexpected("not a JSON object")
        return clean_json(decoded)

    def _limit_words(self, budget: float) -> str:
        """The time a request had: the timeout, or what was left of the run's deadline when that was shorter."""
        run = RUN_DEADLINE.get()
        if run is not None and budget < self.timeout - 0.05:
            return f"{budget:.1f} s (the rest of the run's {run[1]:g} s deadline, RUN_DEADLINE_SECONDS)"
        return f"{self.timeout:g} s"

    def _read_body(
        self, response: requests.Response, deadline: float, budget: float | None = None, max_bytes: int = MAX_BODY_BYTES
    ) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise _unexpected(f"body of {int(declared)} bytes exceeds {max_bytes}")
        chunks, size = [], 0
        limit = self._limit_words(self.timeout if budget is None else budget)
        too_slow = f"OpenRouter did not finish answering within {limit}: retry in a few minutes"
        try:
            # read1 returns what has arrived, so a body dripping byte by byte still meets the deadline.
            while chunk := response.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > max_bytes:
                    raise _unexpected(f"body larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise OpenRouterError(too_slow)
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            raise OpenRouterError(too_slow) from None
        return b"".join(chunks)

    def _http_error(self, response: requests.Response, body: bytes) -> OpenRouterError:
        status = response.status_code
        detail, payload = "", None
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            if isinstance(message, str):
                # An upstream error may echo what it was sent: the key, with or without its prefix.
                detail = redact_hex(" ".join(clean_text(message).split()), also=[self.api_key])[:160]
        except (ValueError, AttributeError, RecursionError):
            pass
        retry_after = None
        header = response.headers.get("Retry-After", "")
        try:
            retry_after = max(0.0, float(header)) if header else None
        except ValueError:
            retry_after = None
        if retry_after is not None and not math.isfinite(retry_after):
            retry_after = None
        advice = {
            401: f"the key is invalid or disabled: get a new one at {KEYS_URL}",
            402: "the account has no credits left: top up at https://openrouter.ai/settings/credits",
            403: "the key is not allowed to do this (a management key is needed, or a budget is exhausted)",
            404: "not found: check OPENROUTER_BASE_URL",
            429: "rate limited: retry in a few minutes",
        }.get(status, "OpenRouter is having trouble: retry in a few minutes; the failure is recorded")
        if status == 403 and BUDGET_WORDS.search(detail) and "management" not in detail.lower():
            advice = "a budget layer of this key is spent: requests are refused until it resets or is raised"
        elif status == 429:
            advice = f"rate limited{_rate_limit_text(response, payload)}: retry later"
        said = f" ({detail})" if detail else ""
        retryable = status == 429 or status >= 500
        return OpenRouterError(f"OpenRouter API error ({status}){said}: {advice}", status, retry_after, retryable)

    # --- endpoints -----------------------------------------------------------------------------

    def get_key(self) -> KeySnapshot:
        """GET /key: the key's own usage, cap and what is left of it."""
        payload = self.get_json("/key")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise _unexpected("no `data` object")
        rate_limit = data.get("rate_limit")
        usage = _money(data, "usage")
        limit = _money(data, "limit", nullable=True)
        budgets, effective = _budgets(data)
        return KeySnapshot(
            label=_text(data, "label", LABEL_LENGTH) or "",
            usage=usage,
            limit=limit,
            limit_remaining=_plausible_remaining(data, limit),
            limit_reset=_text(data, "limit_reset", LIMIT_RESET_LENGTH),
            usage_daily=_money(data, "usage_daily", required=False),
            usage_weekly=_money(data, "usage_weekly", required=False),
            usage_monthly=_money(data, "usage_monthly", required=False),
            byok_usage=_money(data, "byok_usage", required=False),
            is_free_tier=_bool(data, "is_free_tier"),
            is_management_key=bool(_bool(data, "is_management_key") or _bool(data, "is_provisioning_key")),
            expires_at=_datetime(data, "expires_at"),
            rate_limit=rate_limit if isinstance(rate_limit, dict) else None,
            raw=payload,
            workspace_id=_text(data, "workspace_id", ID_LENGTH) or "",
            budgets=budgets,
            effective_budget=effective,
            free_requests=_free_requests(data),
        )

    def get_credits(self) -> AccountCredits:
        """GET /credits: purchased and used credits of the whole account (management key)."""
        data = self.get_json("/credits").get("data")
        if not isinstance(data, dict):
            raise _unexpected("no `data` object")
        return AccountCredits(_money(data, "total_credits"), _money(data, "total_usage"))

    def get_objects(self, path: str, params: dict | None = None, what: str = "an item") -> list[dict]:
        """GET a path whose `data` is a list of objects; anything else is a malformed answer, with the reason."""
        items = self.get_json(path, params).get("data")
        if not isinstance(items, list):
            raise _unexpected("`data` is not a list")
        for item in items:
            if not isinstance(item, dict):
                raise _unexpected(f"{what} is not an object")
        return items

    def list_workspaces(self) -> list[Workspace]:
        """GET /workspaces (management key): every workspace of the account."""
        found = []
        for item in self.get_objects("/workspaces", what="a workspace"):
            ident = _text(item, "id", ID_LENGTH, nullable=False)
            if not ident:
                raise _unexpected("a workspace has no `id`")
            found.append(Workspace(ident, _text(item, "name", LABEL_LENGTH) or ident))
        return found

    def workspace_budgets(self, workspace_id: str) -> list[dict]:
        """GET /workspaces/{id}/budgets (management key): the workspace's budgets, each {"id", "limit_usd",
        "reset_interval"} checked like every other figure."""
        found = []
        for item in self.get_objects(f"/workspaces/{quote(workspace_id, safe='')}/budgets", what="a workspace budget"):
            interval = _text(item, "reset_interval", LIMIT_RESET_LENGTH) or "lifetime"
            found.append({"id": _text(item, "id", ID_LENGTH) or "", "limit_usd": _money(item, "limit_usd"),
                          "reset_interval": interval})  # fmt: skip
        return found

    def workspace_spend(self) -> list[tuple[str, str, float, int]]:
        """GET /activity?group_by=workspace: (date, workspace id, USD, requests) per completed UTC day."""
        rows = []
        for item in self.get_objects("/activity", {"group_by": "workspace"}, what="an activity row"):
            rows.append(
                (
                    _text(item, "date", 40, nullable=False)[:10],
                    _text(item, "workspace_id", ID_LENGTH, nullable=False),
                    _money(item, "usage"),
                    _count(item, "requests", MAX_REQUESTS),
                )
            )
        return rows

    def list_keys(
        self, include_disabled: bool = False, include_expired: bool = False, workspace_id: str | None = None
    ) -> list[ListedKey]:
        """GET /keys, every page (offset pagination, 100 a page), of one workspace (the default one unless
        `workspace_id` is given). One broken item rejects the listing."""
        keys: list[ListedKey] = []
        offset = 0
        while True:
            params = {"offset": offset}
            if workspace_id:
                params["workspace_id"] = workspace_id
            if include_disabled:
                params["include_disabled"] = "true"
            if include_expired:
                params["include_expired"] = "true"
            items = self.get_objects("/keys", params, what="a key")
            for item in items:
                hash_ = _key_hash(item)
                try:
                    usage = _money(item, "usage")
                    limit = _money(item, "limit", nullable=True)
                    keys.append(
                        ListedKey(
                            hash=hash_,
                            name=_text(item, "name", NAME_LENGTH) or "",
                            label=_text(item, "label", LABEL_LENGTH) or "",
                            disabled=bool(_bool(item, "disabled")),
                            usage=usage,
                            limit=limit,
                            limit_remaining=_plausible_remaining(item, limit),
                            limit_reset=_text(item, "limit_reset", LIMIT_RESET_LENGTH),
                            usage_daily=_money(item, "usage_daily", required=False),
                            usage_weekly=_money(item, "usage_weekly", required=False),
                            usage_monthly=_money(item, "usage_monthly", required=False),
                            expires_at=_datetime(item, "expires_at"),
                            created_at=_datetime(item, "created_at"),
                            raw=item,
                            byok_usage=_money(item, "byok_usage", required=False),
                            workspace_id=_text(item, "workspace_id", ID_LENGTH) or "",
                            last_used_at=_datetime(item, "last_used_at"),
                            reports_last_use="last_used_at" in item,
                        )
                    )
                except OpenRouterError as exc:
                    raise OpenRouterError(f"{exc.message} (listed key {hash_[:12]})") from None
            if len(items) < KEYS_PAGE_SIZE:
                return keys
            offset += KEYS_PAGE_SIZE

    def get_activity(self, date: str | None = None, api_key_hash: str | None = None) -> list[dict]:
        """GET /activity: daily spend per model endpoint over the last 30 completed UTC days."""
        params = {k: v for k, v in {"date": date, "api_key_hash": api_key_hash}.items() if v}
        rows = []
        for item in self.get_objects("/activity", params or None, what="an activity row"):
            rows.append(
                {
                    "date": _text(item, "date", 40, nullable=False),
                    "model": _text(item, "model", MODEL_LENGTH, nullable=False),
                    "model_permaslug": _text(item, "model_permaslug", MODEL_LENGTH) or "",
                    "endpoint_id": _text(item, "endpoint_id", ENDPOINT_LENGTH) or "",
                    "provider_name": _text(item, "provider_name", PROVIDER_LENGTH) or "",
                    "usage": _money(item, "usage"),
                    "byok_usage_inference": _money(item, "byok_usage_inference", required=False) or 0.0,
                    "requests": _count(item, "requests", MAX_REQUESTS),
                    "prompt_tokens": _count(item, "prompt_tokens"),
                    "completion_tokens": _count(item, "completion_tokens"),
                    "reasoning_tokens": _count(item, "reasoning_tokens"),
                    "cached_tokens": _count(item, "cached_tokens"),
                }
            )
        return rows

    def list_models(self) -> Catalogue:
        """GET /models, every page (`links.next`), without a key: the public catalogue.

        A broken body rejects the whole answer; a model whose own figures are broken (a NaN or negative
        price, a context that is not a number) is left out with its reason, unless most of them are.
        """
        found: list[ListedModel] = []
        skipped: list[str] = []
        params: dict | None = None
        total_count = None
        seen_offsets: set[str] = set()
        for _ in range(MODELS_MAX_PAGES):
            payload = self.get_json("/models", params, max_bytes=MODELS_MAX_BYTES)
            items = payload.get("data")
            if not isinstance(items, list):
                raise _unexpected("`data` is not a list of models")
            for item in items:
                if not isinstance(item, dict):
                    raise _unexpected("a model is not an object")
                try:
                    found.append(_listed_model(item))
                except OpenRouterError as exc:
                    ident = item.get("id") if isinstance(item.get("id"), str) else "a model"
                    skipped.append(f"{clean_text(ident, MODEL_LENGTH)}: {exc.message.split(': ', 1)[-1]}")
            count = payload.get("total_count")
            if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= 100_000:
                total_count = count
            params = _next_page(payload, seen_offsets)
            if params is None or (total_count is not None and len(found) + len(skipped) >= total_count):
                break
        else:
            raise _unexpected(f"more than {MODELS_MAX_PAGES} pages of models (a `links.next` loop?)")
        if skipped and len(skipped) >= len(found):
            raise _unexpected(f"{len(skipped)} of {len(found) + len(skipped)} models rejected, first {skipped[0]}")
        return Catalogue(found, skipped, total_count)


def _next_page(payload: dict, seen: set[str]) -> dict | None:
    """The query of `links.next`, on our own base URL: another host or path is never followed."""
    links = payload.get("links")
    nxt = links.get("next") if isinstance(links, dict) else None
    if not isinstance(nxt, str) or not nxt:
        return None
    parts = urlsplit(nxt)
    if not parts.path.rstrip("/").endswith("/models"):
        raise _unexpected("`links.next` does not point to the model list")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k in ("offset", "limit")}
    offset = query.get("offset", "")
    if not offset.isdigit() or offset in seen:
        raise _unexpected("`links.next` has no new offset (a pagination loop?)")
    seen.add(offset)
    return query


def parse_price(value: Any, name: str) -> Decimal | None:
    """A catalogue price: a decimal string (or number) of USD per token, finite, >= 0, at most MAX_PRICE."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _unexpected(f"price `{name}` is {type(value).__name__}, not a decimal string")
    try:
        price = Decimal(str(value).strip()[:40])
    except InvalidOperation:
        raise _unexpected(f"price `{name}` is not a number") from None
    if not price.is_finite():
        raise _unexpected(f"price `{name}` is not a finite number")
    if price < 0:
        raise _implausible(f"price `{name}` is {price} (negative)")
    if price > MAX_PRICE:
        raise _implausible(f"price `{name}` is {price} per token")
    return price


def _words(data: dict, name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _unexpected(f"`{name}` is not a list of names")
    return [clean_text(v, CAPABILITY_LENGTH) for v in value[:100]]


def _listed_model(item: dict) -> ListedModel:
    ident = _text(item, "id", MODEL_LENGTH, nullable=False).strip()
    if not ident:
        raise _unexpected("a model has an empty `id`")
    context = item.get("context_length")
    if context is not None and (
        isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= MAX_CONTEXT
    ):
        raise _unexpected("`context_length` is not a whole number of tokens")
    architecture = item.get("architecture") or {}
    if not isinstance(architecture, dict):
        raise _unexpected("`architecture` is not an object")
    pricing = item.get("pricing")
    if not isinstance(pricing, dict):
        raise _unexpected("`pricing` is missing")
    prices = {name: parse_price(pricing.get(name), name) for name in PRICE_FIELDS}
    if prices["prompt"] is None or prices["completion"] is None:
        raise _unexpected("`pricing` has no prompt or completion price")
    expires = item.get("expiration_date")
    expiration = None
    if expires not in (None, ""):
        try:
            expiration = date.fromisoformat(str(expires)[:10])
        except ValueError:
            raise _unexpected("`expiration_date` is not a date") from None
    return ListedModel(
        id=ident,
        name=_text(item, "name", LABEL_LENGTH) or ident,
        context_length=context,
        input_modalities=_words(architecture, "input_modalities"),
        output_modalities=_words(architecture, "output_modalities"),
        supported_parameters=_words(item, "supported_parameters"),
        expiration_date=expiration,
        prices=prices,
    )
