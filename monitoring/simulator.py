"""A simulated OpenRouter credit API: a real HTTP server, stdlib only.

Serves the response shapes of the official SDK `openrouter` 1.3.84 (see shared reference
openrouter-api.md §1-§4) for `/api/v1/key`, `/auth/key`, `/credits`, `/activity`, `/keys`,
plus scripted failure modes, so the monitor, its tests and the demo never need the
real service.  A control API under `/_sim/` lets another process steer it.

No Django imports here on purpose: tests and the demo run it without a project.
"""

from __future__ import annotations

import calendar
import copy
import functools
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PROD_KEY = "sk-or-v1-sim-prod-key"  # inference key, "Production Key"
DEV_KEY = "sk-or-v1-sim-dev-key"  # inference key, "Dev Key"
MANAGEMENT_KEY = "sk-or-v1-sim-mgmt-key"  # management key

FAILURES: dict[str, str] = {
    "http401": "every /api/v1 request answers 401 User not found.",
    "http402": "every /api/v1 request answers 402 insufficient credits",
    "http403": "every /api/v1 request answers 403 forbidden",
    "http429": "every /api/v1 request answers 429 with Retry-After: 1 and X-RateLimit-* headers",
    "http429-free": "every /api/v1 request answers 429 free-models-per-day (limit 50, remaining 0, reset at midnight)",
    "http500": "every /api/v1 request answers 500 Internal Server Error",
    "http502": "every /api/v1 request answers 502 Bad Gateway",
    "http503": "every /api/v1 request answers 503 with Retry-After: 1",
    "slow": "every /api/v1 request sleeps `delay` seconds (default 5) before answering normally",
    "slow-body": "headers with Content-Length, then the body drips one byte every 0.5 s",
    "html": "200 text/html Cloudflare-like challenge page",
    "malformed": "200 application/json with truncated, broken JSON",
    "wrong-types": "200, data.usage is a string and data.limit is a list",
    "nan": "200 JSON with a literal NaN for usage",
    "huge": "200 JSON body of about 20 MB, streamed",
    "empty": "200 with {}",
    "header-drip": "the status line, then header bytes one every `drip_interval` s (never a whole answer)",
    "redirect": "302 to `redirect_to` (another host; its query carries the caller's key)",
    "implausible": "200 with usage -500, limit_remaining -1e300 (and total_usage / activity usage -500)",
    "hostile-strings": "200 with NUL, newlines, chat mentions, bidi overrides and over-long text in labels, names, "
    "limit_reset, models, providers and endpoint ids",
    "bad-hash": "200 /keys whose hashes are 70 characters, not 64 hex digits",
    "echo-key": "500 whose error message echoes the caller's key without its sk-or- prefix",
}

# What "hostile-strings" appends to every label and name: a NUL, a forged log line, chat mentions, and invisible
# format characters (a right-to-left override that makes "gpj.exe" read "exe.jpg", an isolate, a zero-width space).
HOSTILE_TEXT = (
    "\u0000\n2026-01-01 00:00:00,000 ERROR monitoring: FORGED line @everyone @here <@123> <!channel>\x1b[31m"
    " \u202egpj.exe\u2066\u200b\ufeff"
)
HOSTILE_PAD = "x" * 300  # past every column
REDIRECT_TO = "https://openrouter-mirror.example:8443/api/v1/key?token={token}"
IMPLAUSIBLE = {"usage": -500.0, "limit_remaining": -1e300, "total_usage": -500.0}  # what the issue saw

SCENARIOS: dict[str, str] = {
    "steady": "PROD limit 100 usage 54.77 (45.23 left), DEV limit 20 usage 3.10; spend drifts (3.2 and 0.4 $/day)",
    "low": "PROD limit 100 usage 95.50, 4.50 left; no drift",
    "exhausted": "PROD limit 100 usage 100, 0 left; no drift",
    "uncapped": "PROD has no limit (limit/limit_remaining/limit_reset null); the management key is rejected (401)",
    "monthly": "PROD limit 50 reset monthly, usage 180 all-time, usage_monthly 12.5 -> 37.5 left",
    "management": "steady figures with no drift; account 250.0 credits, 180.5 used -> balance 69.5",
    "many-keys": "management scenario plus 150 keys key-000..key-149 (key-013 disabled, key-137 expired)",
    "credits-zero-quirk": "steady figures, no drift; /credits with an inference key answers 200 0/0 instead of 403",
    "runaway-model": "management figures; since 2 days ago PROD's anthropic/claude-sonnet-4 sends 8x its requests "
    "(spend drifts: PROD about $11/day instead of $3.2)",
    "guardrail-daily": "PROD limit 100 (42 left, never resets) spending $12/day; a daily $10 guardrail on the key "
    "($0.50/h since midnight: $6 spent at 12:00, refused from 20:00 until the midnight reset)",
    "member-spent": "steady figures, no drift; PROD's member budget ($50 a month) is fully spent",
    "workspace-budget": "PROD ($20/day) and DEV ($10/day) share a monthly $500 workspace budget, $470 spent",
    "budget-403": "every /api/v1 request answers 403 Key limit exceeded: a budget for this key is exhausted",
    "free-exhausted": "steady figures, no drift; free_model_daily_requests at 0 of 50, used 50 today",
    "workspaces": "management figures; DEV spends in a second workspace, Research, with a $100 monthly budget "
    "($30 spent); /keys lists the default workspace unless workspace_id= is given",
    **{name: f"failure: {desc}" for name, desc in FAILURES.items()},
}

WORKSPACE_ID = "0df9e665-d932-5740-b2c7-b52af166bc11"
GUARDRAIL_ID = "gr_7c1e9a4b2d"  # the key's daily guardrail in the guardrail worlds
MEMBER_GUARDRAIL_ID = "gr_m3mb3r0042"
BUDGET_ID = "wsb_5e2f7d11"
RESEARCH_WORKSPACE_ID = "7b3f2a90-1c4d-5e6f-8a9b-0c1d2e3f4a5b"
RESEARCH_BUDGET_ID = "wsb_r3s3arch"
CREATOR_USER_ID = "user_2simCreat0rUser0000000000"
HISTORY_DAYS = 45  # activity history kept internally; the API serves only the last 30 completed days
ACTIVITY_DAYS = 30
PAGE_SIZE = 100

# model, permaslug, provider, share of a key's daily spend, $ per request (for request counts)
MODELS: list[tuple[str, str, str, float, float]] = [
    ("openai/gpt-4.1", "openai/gpt-4.1-2025-04-14", "OpenAI", 0.40, 0.012),
    ("anthropic/claude-sonnet-4", "anthropic/claude-4-sonnet-20250522", "Anthropic", 0.35, 0.018),
    ("google/gemini-2.5-flash", "google/gemini-2.5-flash", "Google", 0.15, 0.0015),
    ("meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct", "DeepInfra", 0.10, 0.0008),
]


# The public model catalogue (GET /api/v1/models): today's fields, prices as strings in USD per token.
P_OAI = ["tools", "tool_choice", "response_format", "structured_outputs", "temperature", "top_p", "max_tokens", "seed"]
P_ANTH = ["tools", "tool_choice", "reasoning", "include_reasoning", "temperature", "top_p", "max_tokens", "stop"]
P_GEM = ["tools", "tool_choice", "reasoning", "include_reasoning", "response_format", "structured_outputs",
         "temperature", "max_tokens", "seed", "stop"]  # fmt: skip
P_OPEN = ["tools", "tool_choice", "response_format", "temperature", "top_p", "max_tokens", "stop", "seed"]
P_PLAIN = ["temperature", "top_p", "max_tokens", "stop"]
TIF, TI, T = ["text", "image", "file"], ["text", "image"], ["text"]
ALL_IN = ["text", "image", "file", "audio", "video"]
EXPIRING_MODEL = "anthropic/claude-sonnet-4"  # used by the demo keys, retiring soon in the "steady" world
EXPIRES_IN_DAYS = 20  # its expiration_date: this many days after the simulator's today
MODELS_PAGE_SIZE = 25  # so the catalogue has a page boundary
# id, name, context, inputs, params, prompt, completion, other prices
CATALOGUE: list[tuple[str, str, int, list[str], list[str], str, str, dict[str, str]]] = [
    (
        "openai/gpt-4.1",
        "OpenAI: GPT-4.1",
        1047576,
        TIF,
        P_OAI,
        "0.000002",
        "0.000008",
        {"input_cache_read": "0.0000005"},
    ),
    (
        "openai/gpt-4.1-mini",
        "OpenAI: GPT-4.1 Mini",
        1047576,
        TIF,
        P_OAI,
        "0.0000004",
        "0.0000016",
        {"input_cache_read": "0.0000001"},
    ),
    (
        "openai/gpt-4.1-nano",
        "OpenAI: GPT-4.1 Nano",
        1047576,
        TIF,
        P_OAI,
        "0.0000001",
        "0.0000004",
        {"input_cache_read": "0.000000025"},
    ),
    ("openai/gpt-4o", "OpenAI: GPT-4o", 128000, TIF, P_OAI, "0.0000025", "0.00001", {"input_cache_read": "0.00000125"}),
    (
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o-mini",
        128000,
        TIF,
        P_OAI,
        "0.00000015",
        "0.0000006",
        {"input_cache_read": "0.000000075"},
    ),
    (
        "openai/o4-mini",
        "OpenAI: o4 Mini",
        200000,
        TIF,
        [*P_OAI, "reasoning"],
        "0.0000011",
        "0.0000044",
        {"input_cache_read": "0.000000275"},
    ),
    (
        "openai/gpt-5",
        "OpenAI: GPT-5",
        400000,
        TIF,
        [*P_OAI, "reasoning"],
        "0.00000125",
        "0.00001",
        {"input_cache_read": "0.000000125"},
    ),
    (
        "openai/gpt-5-mini",
        "OpenAI: GPT-5 Mini",
        400000,
        TIF,
        [*P_OAI, "reasoning"],
        "0.00000025",
        "0.000002",
        {"input_cache_read": "0.000000025"},
    ),
    (
        "anthropic/claude-sonnet-4",
        "Anthropic: Claude Sonnet 4",
        200000,
        TIF,
        P_ANTH,
        "0.000003",
        "0.000015",
        {"input_cache_read": "0.0000003", "input_cache_write": "0.00000375"},
    ),
    (
        "anthropic/claude-sonnet-4.5",
        "Anthropic: Claude Sonnet 4.5",
        1000000,
        TIF,
        P_ANTH,
        "0.000003",
        "0.000015",
        {"input_cache_read": "0.0000003", "input_cache_write": "0.00000375"},
    ),
    (
        "anthropic/claude-haiku-4.5",
        "Anthropic: Claude Haiku 4.5",
        200000,
        TIF,
        P_ANTH,
        "0.000001",
        "0.000005",
        {"input_cache_read": "0.0000001", "input_cache_write": "0.00000125"},
    ),
    (
        "anthropic/claude-3.5-haiku",
        "Anthropic: Claude 3.5 Haiku",
        200000,
        TI,
        P_ANTH[:2] + P_ANTH[4:],
        "0.0000008",
        "0.000004",
        {"input_cache_read": "0.00000008"},
    ),
    (
        "anthropic/claude-opus-4.1",
        "Anthropic: Claude Opus 4.1",
        200000,
        TIF,
        P_ANTH,
        "0.000015",
        "0.000075",
        {"input_cache_read": "0.0000015"},
    ),
    (
        "google/gemini-2.5-flash",
        "Google: Gemini 2.5 Flash",
        1048576,
        ALL_IN,
        P_GEM,
        "0.0000003",
        "0.0000025",
        {"input_cache_read": "0.00000003", "internal_reasoning": "0.0000025"},
    ),
    (
        "google/gemini-2.5-flash-lite",
        "Google: Gemini 2.5 Flash Lite",
        1048576,
        ALL_IN,
        P_GEM,
        "0.0000001",
        "0.0000004",
        {"input_cache_read": "0.00000001", "internal_reasoning": "0.0000004"},
    ),
    (
        "google/gemini-2.5-pro",
        "Google: Gemini 2.5 Pro",
        1048576,
        ALL_IN,
        P_GEM,
        "0.00000125",
        "0.00001",
        {"input_cache_read": "0.00000031", "internal_reasoning": "0.00001"},
    ),
    (
        "google/gemini-2.0-flash-001",
        "Google: Gemini 2.0 Flash",
        1048576,
        ALL_IN,
        ["tools", "tool_choice", "response_format", "structured_outputs", "temperature", "max_tokens"],
        "0.0000001",
        "0.0000004",
        {"input_cache_read": "0.000000025"},
    ),
    (
        "google/gemini-2.0-flash-lite-001",
        "Google: Gemini 2.0 Flash Lite",
        1048576,
        ALL_IN,
        [*P_PLAIN, "response_format"],
        "0.000000075",
        "0.0000003",
        {},
    ),
    (
        "google/gemma-3-27b-it",
        "Google: Gemma 3 27B",
        131072,
        TI,
        [*P_PLAIN, "response_format"],
        "0.00000009",
        "0.00000016",
        {},
    ),
    (
        "meta-llama/llama-3.3-70b-instruct",
        "Meta: Llama 3.3 70B Instruct",
        131072,
        T,
        P_OPEN,
        "0.00000013",
        "0.00000039",
        {},
    ),
    ("meta-llama/llama-3.3-70b-instruct:free", "Meta: Llama 3.3 70B Instruct (free)", 131072, T, P_OPEN, "0", "0", {}),
    (
        "meta-llama/llama-3.1-8b-instruct",
        "Meta: Llama 3.1 8B Instruct",
        131072,
        T,
        P_OPEN,
        "0.00000002",
        "0.00000005",
        {},
    ),
    ("meta-llama/llama-4-maverick", "Meta: Llama 4 Maverick", 1048576, TI, P_OPEN, "0.00000015", "0.0000006", {}),
    ("meta-llama/llama-4-scout", "Meta: Llama 4 Scout", 327680, TI, P_OPEN, "0.00000008", "0.0000003", {}),
    (
        "mistralai/mistral-small-3.2-24b-instruct",
        "Mistral: Mistral Small 3.2 24B",
        131072,
        TI,
        P_OPEN,
        "0.00000005",
        "0.0000001",
        {},
    ),
    ("mistralai/mistral-medium-3.1", "Mistral: Mistral Medium 3.1", 131072, TI, P_OPEN, "0.0000004", "0.000002", {}),
    ("mistralai/mistral-nemo", "Mistral: Mistral Nemo", 131072, T, P_OPEN, "0.00000002", "0.00000004", {}),
    (
        "deepseek/deepseek-chat-v3.1",
        "DeepSeek: DeepSeek V3.1",
        163840,
        T,
        [*P_OPEN, "reasoning", "structured_outputs"],
        "0.0000002",
        "0.0000008",
        {},
    ),
    (
        "deepseek/deepseek-r1-0528",
        "DeepSeek: R1 0528",
        163840,
        T,
        [*P_PLAIN, "reasoning"],
        "0.0000004",
        "0.00000175",
        {},
    ),
    (
        "qwen/qwen3-235b-a22b-2507",
        "Qwen: Qwen3 235B A22B Instruct 2507",
        262144,
        T,
        [*P_OPEN, "structured_outputs"],
        "0.000000078",
        "0.000000312",
        {},
    ),
    ("qwen/qwen3-coder", "Qwen: Qwen3 Coder 480B A35B", 262144, T, P_OPEN, "0.00000022", "0.00000095", {}),
    (
        "x-ai/grok-4",
        "xAI: Grok 4",
        256000,
        TI,
        [*P_GEM[:6], "temperature"],
        "0.000003",
        "0.000015",
        {"input_cache_read": "0.00000075"},
    ),
    (
        "x-ai/grok-4-fast",
        "xAI: Grok 4 Fast",
        2000000,
        TI,
        [*P_GEM[:6], "temperature"],
        "0.0000002",
        "0.0000005",
        {"input_cache_read": "0.00000005"},
    ),
    ("cohere/command-r-08-2024", "Cohere: Command R (08-2024)", 128000, T, P_OPEN, "0.00000015", "0.0000006", {}),
    ("perplexity/sonar", "Perplexity: Sonar", 127072, TI, P_PLAIN, "0.000001", "0.000001", {"request": "0.005"}),
    ("openrouter/auto", "Auto Router", 2000000, TIF, P_OAI, "-1", "-1", {}),  # the real catalogue's -1 quirk
]

KEY_FIELDS = {
    "usage",
    "limit",
    "limit_remaining",
    "limit_reset",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "expires_at",
    "disabled",
    "name",
    "label",
    "spend_per_day",
    # extras beyond the brief, handy for demos
    "activity_per_day",
    "include_byok_in_limit",
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_weekly",
    "byok_usage_monthly",
    "last_used_at",
    "created_at",
    "external_user",
    "activity_models",
    "workspace_id",
}
_DRIFTING = ("usage", "usage_daily", "usage_weekly", "usage_monthly")
# Setting any of these without limit_remaining drops an explicit limit_remaining override.
_RECOMPUTE = {"usage", "usage_daily", "usage_weekly", "usage_monthly", "limit", "limit_reset"}


def key_hash(token: str) -> str:
    """OpenRouter's key ID: the SHA-256 hex of the key string."""
    return hashlib.sha256(token.encode()).hexdigest()


def mask_token(token: str) -> str:
    """OpenRouter's label style: first 12 characters, '...', last 3."""
    return f"{token[:12]}...{token[-3:]}"


def redact(value: str) -> str:
    """Keep only the last 4 characters of a credential, so logs can never leak a key."""
    scheme, _, cred = value.strip().partition(" ")
    if not cred:
        scheme, cred = "", scheme
    prefix = f"{scheme} " if scheme else ""
    return f"{prefix}<redacted:...{cred[-4:]}>"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _money(x: float) -> float:
    # OpenRouter reports sub-cent floats; rounding to 8 dp keeps 100 - 54.77 == 45.23 exact.
    return round(x, 8)


def _unit(*parts: object) -> float:
    """Deterministic pseudo-random number in [0, 1) from the parts (stable across runs)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _uuid_from(*parts: object) -> str:
    h = hashlib.md5("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def next_reset(now: datetime, reset: str | None) -> datetime | None:
    """Next UTC rollover of a limit window (days at midnight, weeks on Monday, months on the 1st)."""
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if reset == "daily":
        return midnight + timedelta(days=1)
    if reset == "weekly":
        return midnight + timedelta(days=7 - now.weekday())
    if reset == "monthly":
        days = calendar.monthrange(now.year, now.month)[1]
        return datetime(now.year, now.month, 1, tzinfo=UTC) + timedelta(days=days)
    return None


class Clock:
    """A clock to hand the simulator (`Simulator(now=clock)`): a set time, or the wall clock when `at` is None."""

    def __init__(self, at: datetime | None = None):
        self.at = at

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


@dataclass
class Surge:
    """One model of one key runs away from `since`: its requests, tokens per request and price multiply."""

    model: str
    since: datetime
    requests: float = 1.0
    tokens: float = 1.0
    price: float = 1.0

    @property
    def spend(self) -> float:
        return self.requests * self.tokens * self.price

    def share_of(self, day: date) -> float:
        """The part of a UTC day that is past `since` (0 before it, 1 after it)."""
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        seconds = (start + timedelta(days=1) - max(start, self.since)).total_seconds()
        return min(max(seconds / 86400, 0.0), 1.0)


@dataclass
class SimKey:
    token: str
    name: str
    set_at: datetime  # when the stored figures were true; drift is counted from here
    created_at: str
    label: str | None = None  # None = masked token
    limit: float | None = None
    limit_reset: str | None = None
    limit_remaining: float | None = None  # explicit override (see has_remaining_override)
    has_remaining_override: bool = False
    usage: float = 0.0
    usage_daily: float = 0.0
    usage_weekly: float = 0.0
    usage_monthly: float = 0.0
    byok_usage: float = 0.0
    byok_usage_daily: float = 0.0
    byok_usage_weekly: float = 0.0
    byok_usage_monthly: float = 0.0
    include_byok_in_limit: bool = False
    spend_per_day: float = 0.0
    activity_per_day: float | None = None  # history spend; None = spend_per_day
    disabled: bool = False
    expires_at: str | None = None
    updated_at: str | None = None
    last_used_at: str | None = None
    external_user: str | None = None
    is_management: bool = False
    spend_by_day: dict[date, float] | None = None  # a replayed trace's exact spend per UTC day, for /activity
    activity_models: list[str] | None = None  # the catalogue models its activity uses (None: MODELS)
    surge: Surge | None = None  # one model running away (set_model_surge)
    workspace_id: str = WORKSPACE_ID

    @functools.cached_property
    def hash(self) -> str:  # computed once: by_hash rebuilds its index from every key (10,000 in the benchmark)
        return key_hash(self.token)

    def history_rate(self) -> float:
        return self.spend_per_day if self.activity_per_day is None else self.activity_per_day


@dataclass
class SimLayer:
    """A budget layer (`budgets[]` on /key) over some keys: its spend grows with theirs and resets with its window."""

    scope: str  # api_key, member, workspace, workspace_default_key, workspace_default_member
    limit_usd: float
    tokens: list[str]  # the keys it covers (a workspace budget: several)
    set_at: datetime
    spent: float = 0.0  # at set_at, within set_at's window
    reset_interval: str | None = None  # None: a lifetime budget
    guardrail_id: str | None = None
    budget_id: str | None = None
    include_byok: bool = False

    def window_start(self, now: datetime) -> datetime | None:
        resets = next_reset(now, self.reset_interval)
        if resets is None:
            return None
        if self.reset_interval == "daily":
            return resets - timedelta(days=1)
        if self.reset_interval == "weekly":
            return resets - timedelta(days=7)
        return datetime(now.year, now.month, 1, tzinfo=UTC)


@dataclass
class Account:
    total_credits: float
    total_usage: float
    set_at: datetime


@dataclass
class Failure:
    name: str | None = None
    count: int | None = None  # None = until cleared
    path: str | None = None  # only requests to this path (e.g. "/credits"); None = every /api/v1 request


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": status, "message": message}})


def model_entry(item: tuple, today: date, retiring: dict[str, int] | None = None) -> dict[str, Any]:
    """One catalogue model as GET /models answers it today; `retiring`: model -> days until its expiration_date."""
    ident, name, context, inputs, params, prompt, completion, extra = item
    modality = f"{'+'.join(inputs)}->text"
    return {
        "id": ident,
        "canonical_slug": ident,
        "hugging_face_id": "",
        "name": name,
        "created": 1750000000,
        "description": f"{name}, as the simulator lists it.",
        "context_length": context,
        "architecture": {
            "modality": modality,
            "input_modalities": list(inputs),
            "output_modalities": ["text"],
            "tokenizer": ident.split("/")[0],
            "instruct_type": None,
        },
        "pricing": {"prompt": prompt, "completion": completion, **extra},
        "top_provider": {"context_length": context, "max_completion_tokens": 32768, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": list(params),
        "default_parameters": {},
        "expiration_date": (today + timedelta(days=retiring[ident])).isoformat() if ident in (retiring or {}) else None,
        "knowledge_cutoff": None,
        "links": {"details": f"/api/v1/models/{ident}/endpoints"},
    }


def list_price(item: tuple, name: str) -> float:
    prices = {"prompt": item[5], "completion": item[6], **item[7]}
    return float(prices.get(name) or 0)


def _mangle_models(data: Any, how: str) -> Any:
    """Hostile catalogue answers: NaN prices, strings where numbers belong, negative prices."""
    if not isinstance(data, list):
        return data
    out = copy.deepcopy(data)
    for model in out:
        if how == "nan":
            model["pricing"]["prompt"] = "NaN"
        elif how == "wrong-types":
            model["context_length"] = "a lot"
            model["pricing"]["completion"] = [model["pricing"]["completion"]]
        elif how == "implausible":
            model["pricing"]["prompt"] = "-0.5"
    return out


class Simulator:
    """A simulated OpenRouter; `start()` it in a thread, point OPENROUTER_BASE_URL at `url`."""

    def __init__(
        self,
        scenario: str = "steady",
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._hash_index: dict[str, SimKey] = {}  # see by_hash
        self.delay: float = 5.0  # seconds, failure "slow"
        self.drip_interval: float = 0.5  # seconds per byte, failure "slow-body"
        self.huge_bytes: int = 20 * 1024 * 1024  # failure "huge"
        self.header_drip_seconds: float = 600.0  # failure "header-drip" gives up after this long
        self.redirect_to: str = REDIRECT_TO  # failure "redirect"; {token} is the caller's key
        self.implausible: dict[str, float] = dict(IMPLAUSIBLE)  # failure "implausible": field -> value sent
        self.log_requests = False  # print one line per request (the command turns it on)
        self.many_keys = 150  # how many keys the many-keys world lists (the benchmark scales it up)
        self.requests: list[dict] = []
        self.inbox: list[Any] = []  # what was posted to /_sim/inbox
        self.keys: dict[str, SimKey] = {}
        self.layers: list[SimLayer] = []
        self.workspaces: dict[str, str] = {WORKSPACE_ID: "Default Workspace"}  # id -> name
        self.free_quota: tuple[int, int] | None = None  # (limit, used today); None: 1000 and a few used
        self.account = Account(0.0, 0.0, self.now())
        self.failure = Failure()
        self.catalogue: list[tuple] = list(CATALOGUE)
        self.retiring: dict[str, int] = {}  # model -> days from today to its expiration_date
        self.models_page_size = MODELS_PAGE_SIZE
        self.scenario = ""
        self.set_scenario(scenario)
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.sim = self  # type: ignore[attr-defined]
        self._conns: set[socket.socket] = set()  # open client connections, cut on stop()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v1"

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="openrouter-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_event.set()  # ends sleeps and drips in handler threads
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        # Keep-alive connections would otherwise go on being served after stop(), so a test
        # that stops the simulator to mean "OpenRouter is down" would still get answers.
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._stop_event.set()
            self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def now(self) -> datetime:
        return self._now().astimezone(UTC)

    # ---- state -----------------------------------------------------------------------------
    def set_scenario(self, name: str) -> None:
        """Reset keys, account and failure mode to the named scenario (the request log is kept)."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        with self._lock:
            now = self.now()
            self.scenario = name
            self.failure = Failure()
            self.catalogue = list(CATALOGUE)
            # The demo's world ("steady") uses a model that is going away; the others stay quiet about it.
            self.retiring = {EXPIRING_MODEL: EXPIRES_IN_DAYS} if name == "steady" else {}
            self.keys = {}
            self.layers = []
            self.workspaces = {WORKSPACE_ID: "Default Workspace"}
            self.free_quota = None
            drift = name in ("steady", "runaway-model")  # every other scenario keeps exact figures
            self._add(
                PROD_KEY,
                "Production Key",
                now,
                limit=100.0,
                usage=54.77,
                usage_daily=1.6,
                usage_weekly=11.2,
                usage_monthly=44.8,
                spend_per_day=3.2 if drift else 0.0,
                activity_per_day=3.2,
                created_days_ago=200,
                last_used_at=iso(now - timedelta(minutes=3)),
            )
            self._add(
                DEV_KEY,
                "Dev Key",
                now,
                limit=20.0,
                usage=3.10,
                usage_daily=0.2,
                usage_weekly=1.4,
                usage_monthly=3.10,
                spend_per_day=0.4 if drift else 0.0,
                activity_per_day=0.4,
                created_days_ago=120,
                last_used_at=iso(now - timedelta(hours=2)),
            )
            self._add(
                MANAGEMENT_KEY,
                "Management Key",
                now,
                is_management=True,
                created_days_ago=90,
                last_used_at=iso(now - timedelta(minutes=10)),
            )
            self.account = Account(250.0, 180.5, now)
            prod = self.keys[PROD_KEY]
            if name == "low":
                prod.usage = 95.50
            elif name == "exhausted":
                prod.usage = 100.0
            elif name == "uncapped":
                prod.limit = None
                del self.keys[MANAGEMENT_KEY]
            elif name == "monthly":
                prod.limit, prod.limit_reset = 50.0, "monthly"
                prod.usage, prod.usage_daily, prod.usage_weekly, prod.usage_monthly = 180.0, 0.0, 4.25, 12.5
            elif name == "many-keys":
                for i in range(self.many_keys):
                    self._add(
                        f"sk-or-v1-sim-many-{i:03d}",
                        f"key-{i:03d}",
                        now,
                        limit=10.0 if i % 3 == 0 else None,
                        usage=round(0.37 * (i % 11), 2),
                        disabled=i == 13,
                        expires_at=iso(now - timedelta(days=2)) if i == 137 else None,
                        created_days_ago=60 - i * 0.25,
                        last_used_at=iso(now - timedelta(hours=i)) if i % 2 == 0 else None,
                    )
            elif name == "runaway-model":
                self.set_model_surge(PROD_KEY, MODELS[1][0], requests=8.0, since=now - timedelta(days=2))
            elif name in FAILURES:
                self.failure = Failure(name, None)
            self._add_layers(name, now)

    def _add_layers(self, name: str, now: datetime) -> None:
        """The budget layers of each world (the demo's `steady` too: a weekly guardrail binds Dev before its cap)."""
        prod = self.keys[PROD_KEY]
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        if name == "steady":
            # Dev spends $0.40/day against a $2.50 weekly guardrail: refused late each week, long before its cap.
            monday = midnight - timedelta(days=now.weekday())
            spent = 0.4 * (now - monday).total_seconds() / 86400
            self.add_layer("api_key", 2.5, [DEV_KEY], "weekly", spent=min(spent, 2.5), guardrail_id=GUARDRAIL_ID)
        elif name == "guardrail-daily":
            prod.limit, prod.usage, prod.spend_per_day = 100.0, 58.0, 12.0
            prod.usage_daily = 12.0 * (now - midnight).total_seconds() / 86400
            self.add_layer(
                "api_key", 10.0, [PROD_KEY], "daily", spent=min(prod.usage_daily, 10.0), guardrail_id=GUARDRAIL_ID
            )
        elif name == "member-spent":
            self.add_layer("member", 50.0, [PROD_KEY], "monthly", spent=50.0, guardrail_id=MEMBER_GUARDRAIL_ID)
        elif name == "workspace-budget":
            prod.spend_per_day, self.keys[DEV_KEY].spend_per_day = 20.0, 10.0
            self.add_layer("workspace", 500.0, [PROD_KEY, DEV_KEY], "monthly", spent=470.0, budget_id=BUDGET_ID)
        elif name == "budget-403":
            self.failure = Failure("http403", None)
        elif name == "free-exhausted":
            self.free_quota = (50, 50)
        elif name == "workspaces":
            self.workspaces[RESEARCH_WORKSPACE_ID] = "Research"
            self.keys[DEV_KEY].workspace_id = RESEARCH_WORKSPACE_ID
            self.add_layer("workspace", 100.0, [DEV_KEY], "monthly", spent=30.0, budget_id=RESEARCH_BUDGET_ID)

    def add_layer(
        self, scope: str, limit_usd: float, tokens: list[str], reset_interval: str | None = None, **fields: Any
    ) -> SimLayer:
        """Add a budget layer over `tokens` (spent, guardrail_id, budget_id, include_byok may be given)."""
        with self._lock:
            self._materialize(self.now())
            layer = SimLayer(scope, float(limit_usd), list(tokens), self.now(), reset_interval=reset_interval, **fields)
            self.layers.append(layer)
            return layer

    def _layer_spend(self, layer: SimLayer, now: datetime) -> float:
        rate = sum(self.keys[t].spend_per_day for t in layer.tokens if t in self.keys)
        start = layer.window_start(now)
        if start is not None and start > layer.set_at:  # reset since: only the spend of this window counts
            spent = rate * (now - start).total_seconds() / 86400
        else:
            spent = layer.spent + rate * max(0.0, (now - layer.set_at).total_seconds()) / 86400
        return min(spent, layer.limit_usd)  # a spent layer refuses requests: spend stops at its limit

    def _layer_budget(self, layer: SimLayer, now: datetime) -> dict[str, Any]:
        spent = self._layer_spend(layer, now)
        resets = next_reset(now, layer.reset_interval)
        return {
            "scope": layer.scope,
            "budget_id": layer.budget_id,
            "guardrail_id": layer.guardrail_id,
            "include_byok": layer.include_byok,
            "limit_usd": _money(layer.limit_usd),
            "spend_usd": _money(spent),
            "remaining_usd": _money(layer.limit_usd - spent),
            "reset_interval": layer.reset_interval,
            "resets_at": iso(resets) if resets else None,
        }

    def _add(self, token: str, name: str, now: datetime, created_days_ago: float = 30, **fields: Any) -> None:
        created = iso(now - timedelta(days=created_days_ago))
        self.keys[token] = SimKey(token=token, name=name, set_at=now, created_at=created, updated_at=created, **fields)

    def _materialize(self, now: datetime) -> None:
        """Fold the drift so far into the stored figures, so edits start from what clients saw."""
        for layer in self.layers:  # before the keys: a layer's spend grows at its keys' rates
            layer.spent, layer.set_at = self._layer_spend(layer, now), now
        self.account.total_usage = self._account_usage(now)
        self.account.set_at = now
        for k in self.keys.values():
            grown = k.spend_per_day * max(0.0, (now - k.set_at).total_seconds()) / 86400
            for f in _DRIFTING:
                setattr(k, f, getattr(k, f) + grown)
            if k.has_remaining_override and k.limit_remaining is not None:
                k.limit_remaining = max(0.0, k.limit_remaining - grown)
            k.set_at = now

    def _account_usage(self, now: datetime) -> float:
        seconds = max(0.0, (now - self.account.set_at).total_seconds())
        return self.account.total_usage + sum(k.spend_per_day for k in self.keys.values()) * seconds / 86400

    def set_key(self, token: str, **fields: Any) -> None:
        """Change a key's stored figures (see KEY_FIELDS); explicit values stay exact unless spend_per_day > 0."""
        unknown = set(fields) - KEY_FIELDS
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        with self._lock:
            if token not in self.keys:
                raise KeyError("unknown key")
            now = self.now()
            self._materialize(now)
            k = self.keys[token]
            for f, v in fields.items():
                if f == "expires_at" and v is not None:
                    v = iso(parse_iso(v))  # validate early: a bad string must not break /key later
                if f in _DRIFTING or f in {
                    "limit",
                    "spend_per_day",
                    "activity_per_day",
                    "byok_usage",
                    "byok_usage_daily",
                    "byok_usage_weekly",
                    "byok_usage_monthly",
                }:
                    v = None if v is None else float(v)
                setattr(k, f, v)
            if "limit_remaining" in fields:
                # None clears the override: limit_remaining is computed again
                k.has_remaining_override = fields["limit_remaining"] is not None
            elif _RECOMPUTE & set(fields):
                k.has_remaining_override = False
            k.updated_at = iso(now)

    def add_key(self, token: str, name: str, **fields: Any) -> None:
        """Add an inference key (no limit, no usage unless given), created now."""
        if set(fields) - KEY_FIELDS:
            raise ValueError(f"unknown key fields: {sorted(set(fields) - KEY_FIELDS)}")
        with self._lock:  # RLock: set_key below runs in the same critical section
            if token in self.keys:
                raise ValueError("key already exists")
            now = self.now()
            self._materialize(now)
            self._add(token, name, now, created_days_ago=0)
            try:
                self.set_key(token, **fields)
            except (ValueError, TypeError):
                del self.keys[token]  # all or nothing
                raise

    def remove_key(self, token: str) -> None:
        """Forget a key (a replay watches one key only)."""
        with self._lock:
            self._materialize(self.now())
            self.keys.pop(token, None)

    def set_daily_spend(self, token: str, spend_by_day: dict[date, float] | None) -> None:
        """Serve exactly this spend per UTC day in /activity for the key (None: back to its rate)."""
        with self._lock:
            self.keys[token].spend_by_day = dict(spend_by_day) if spend_by_day is not None else None

    def load(self, state: dict[str, Any]) -> None:
        """Stand where a saved world is (JSON-able, from monitoring.demo): {"keys": {token: set_key fields},
        "daily": {token: {ISO date: spend}}, "account": [total_credits, total_usage]}."""
        for token, fields in state.get("keys", {}).items():
            self.set_key(token, **fields)
        for token, days in state.get("daily", {}).items():
            self.set_daily_spend(token, {date.fromisoformat(day): spend for day, spend in days.items()})
        if state.get("account"):
            self.set_account(*state["account"])

    def set_model_surge(
        self,
        token: str,
        model: str | None,
        requests: float = 1.0,
        tokens: float = 1.0,
        price: float = 1.0,
        since: datetime | None = None,
    ) -> None:
        """Make one model of a key run away from `since` (default now): its requests, tokens per request and
        price multiply in /activity, and the key's live spend grows by that model's extra share. None: stop."""
        names = [m[0] for m in MODELS]
        with self._lock:
            now = self.now()
            self._materialize(now)
            k = self.keys[token]
            if k.surge is not None:  # undo the previous surge's extra live spend first
                k.spend_per_day = max(0.0, k.spend_per_day - self._surge_extra(k, k.surge))
                k.surge = None
            if model is None:
                return
            if model not in names:
                raise ValueError(f"unknown model {model!r}; known: {', '.join(names)}")
            if min(requests, tokens, price) <= 0:
                raise ValueError("requests, tokens and price are positive factors")
            k.surge = Surge(model, since or now, float(requests), float(tokens), float(price))
            k.spend_per_day += self._surge_extra(k, k.surge)

    @staticmethod
    def _surge_extra(k: SimKey, surge: Surge) -> float:
        share = next(m[3] for m in MODELS if m[0] == surge.model) / sum(m[3] for m in MODELS)
        return k.history_rate() * share * (surge.spend - 1.0)

    def set_account(self, total_credits: float, total_usage: float) -> None:
        with self._lock:
            self._materialize(self.now())
            self.account.total_credits = float(total_credits)
            self.account.total_usage = float(total_usage)

    def set_model_prices(self, model: str, **prices: str) -> None:
        """Change a catalogue model's list prices (strings, USD per token), as OpenRouter does now and then."""
        with self._lock:
            for i, item in enumerate(self.catalogue):
                if item[0] == model:
                    base = {"prompt": item[5], "completion": item[6], **item[7]}
                    base.update(prices)
                    extra = {k: v for k, v in base.items() if k not in ("prompt", "completion")}
                    self.catalogue[i] = (*item[:5], base["prompt"], base["completion"], extra)
                    return
            raise KeyError(f"unknown model {model!r}")

    def offer(self, model: str) -> tuple | None:
        return next((item for item in self.catalogue if item[0] == model), None)

    def set_failure(self, name: str | None, count: int | None = None, path: str | None = None) -> None:
        """Force a failure mode for the next `count` /api/v1 requests (None = until cleared), or only for those to
        `path` under /api/v1 ("/credits"): a run's requests go out concurrently, in no fixed order."""
        if name is not None and name not in FAILURES:
            raise ValueError(f"unknown failure {name!r}; known: {', '.join(FAILURES)}")
        with self._lock:
            self.failure = Failure(name, None if name is None else count, path)

    def _take_failure(self, path: str = "") -> str | None:
        with self._lock:
            f = self.failure
            if f.name is None or (f.path is not None and path != f"/api/v1{f.path}"):
                return None
            name = f.name
            if f.count is not None:
                f.count -= 1
                if f.count <= 0:
                    self.failure = Failure()
            return name

    # ---- computed views --------------------------------------------------------------------
    def _figures(self, k: SimKey, now: datetime) -> dict[str, Any]:
        grown = k.spend_per_day * max(0.0, (now - k.set_at).total_seconds()) / 86400
        usage = {f: getattr(k, f) + grown for f in _DRIFTING}
        window = {"daily": "usage_daily", "weekly": "usage_weekly", "monthly": "usage_monthly"}.get(
            k.limit_reset or "", "usage"
        )
        spend = usage[window]
        if k.include_byok_in_limit:
            spend += getattr(k, "byok_" + window)
        remaining: float | None
        if k.limit is None:
            remaining = None
        elif k.has_remaining_override and k.limit_remaining is not None:
            remaining = max(0.0, k.limit_remaining - grown)
            spend = k.limit - remaining
        else:
            remaining = max(0.0, k.limit - spend)
        return {
            "limit": None if k.limit is None else _money(k.limit),
            "limit_remaining": None if remaining is None else _money(remaining),
            "limit_reset": k.limit_reset,
            "include_byok_in_limit": k.include_byok_in_limit,
            **{f: _money(v) for f, v in usage.items()},
            "byok_usage": _money(k.byok_usage),
            "byok_usage_daily": _money(k.byok_usage_daily),
            "byok_usage_weekly": _money(k.byok_usage_weekly),
            "byok_usage_monthly": _money(k.byok_usage_monthly),
            "_spend": spend,
        }

    def _budget(self, k: SimKey, fig: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        if k.limit is None:
            return None
        resets = next_reset(now, k.limit_reset)
        return {
            "scope": "key_limit",
            "budget_id": None,
            "guardrail_id": None,
            "include_byok": k.include_byok_in_limit,
            "limit_usd": fig["limit"],
            "spend_usd": _money(fig["_spend"]),
            "remaining_usd": fig["limit_remaining"],
            "reset_interval": k.limit_reset,
            "resets_at": iso(resets) if resets else None,
        }

    def _last_used(self, k: SimKey, now: datetime) -> str | None:
        """A key spending right now was just used; one whose /activity shows spend was used on its newest such
        day at the latest (as OpenRouter's figures agree with each other); else what was set."""
        if k.spend_per_day > 0:
            return iso(now - timedelta(seconds=90))
        if k.spend_by_day is not None:
            days = [day for day, spent in k.spend_by_day.items() if spent > 0 and day < now.date()]
        else:
            days = [now.date() - timedelta(days=1)] if k.history_rate() > 0 else []
        if not days:
            return k.last_used_at
        used = datetime.combine(max(days), datetime.max.time(), tzinfo=UTC).replace(microsecond=0)
        return iso(max(used, parse_iso(k.last_used_at))) if k.last_used_at else iso(used)

    def _key_data(self, k: SimKey, now: datetime) -> dict[str, Any]:
        """The `/key` object: all 25 fields SDK 1.3.84 knows (§1.2)."""
        fig = self._figures(k, now)
        budget = self._budget(k, fig, now)
        fig.pop("_spend")
        used = 0 if k.is_management else int(_unit(k.hash, now.date()) * 40)
        free_limit = 1000
        if self.free_quota is not None:
            free_limit, used = self.free_quota
        budgets = [self._layer_budget(layer, now) for layer in self.layers if k.token in layer.tokens]
        budgets += [budget] if budget else []
        effective = min(budgets, key=lambda b: b["remaining_usd"], default=None)
        return {
            "label": k.label or mask_token(k.token),
            **fig,
            "is_free_tier": False,
            "is_management_key": k.is_management,
            "is_provisioning_key": k.is_management,
            "rate_limit": {"requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore."},
            "creator_user_id": CREATOR_USER_ID,
            "organization_id": None,
            "workspace_id": k.workspace_id,
            "expires_at": k.expires_at,
            "allowed_data_regions": ["global"],
            "free_model_daily_requests": {"limit": free_limit, "remaining": max(free_limit - used, 0), "used": used},
            "budgets": budgets,
            "effective_budget": effective,
        }

    def _list_item(self, k: SimKey, now: datetime) -> dict[str, Any]:
        """A `/keys` item: every field of §3.2."""
        fig = self._figures(k, now)
        fig.pop("_spend")
        return {
            "hash": k.hash,
            "name": k.name,
            "label": k.label or mask_token(k.token),
            "disabled": k.disabled,
            **fig,
            "created_at": k.created_at,
            "updated_at": k.updated_at,
            "expires_at": k.expires_at,
            "creator_user_id": CREATOR_USER_ID,
            "workspace_id": k.workspace_id,
            "last_used_at": self._last_used(k, now),
            "external_user": k.external_user,
        }

    def _expired(self, k: SimKey, now: datetime) -> bool:
        return k.expires_at is not None and parse_iso(k.expires_at) <= now

    def activity_rows(self, k: SimKey, day: date) -> list[dict[str, Any]]:
        """Deterministic per-model rows for one key and one UTC day (same inputs, same numbers)."""
        if k.spend_by_day is not None:
            total = k.spend_by_day.get(day, 0.0)
        else:
            total = k.history_rate() * (0.85 + 0.3 * _unit("day", k.hash, day))  # within 15% of the rate
        if total <= 0:
            return []
        if k.activity_models is not None:
            known = {m[0]: m for m in MODELS}
            picked = [
                (m, m, known[m][2] if m in known else m.split("/")[0], 1.0 / len(k.activity_models), 0.0)
                for m in k.activity_models
            ]
        else:
            picked = [m for m in MODELS if m[0] != MODELS[-1][0] or _unit("skip", k.hash, day) > 0.3]
        weights = [m[3] * (0.6 + 0.8 * _unit(day, m[0], k.hash)) for m in picked]
        rows = []
        for (model, slug, provider, _, per_req), w in zip(picked, weights, strict=True):
            usage = total * w / sum(weights)
            offer = self.offer(model)
            # A request's token mix; scaled so the list price of the tokens is what was spent.
            prompt_1 = 700 + int(800 * _unit("p", day, model, k.hash))
            completion_1 = 150 + int(300 * _unit("c", day, model, k.hash))
            cached_share = 0.3 * _unit("k", day, model, k.hash)
            reasoning_1 = 40 if provider in ("Anthropic", "Google") else 0
            if offer is not None:
                cache = list_price(offer, "input_cache_read")
                one = (
                    prompt_1 * (1 - cached_share) * list_price(offer, "prompt")
                    + prompt_1 * cached_share * (cache if cache else list_price(offer, "prompt"))
                    + completion_1 * list_price(offer, "completion")
                    + reasoning_1 * list_price(offer, "internal_reasoning")
                    + list_price(offer, "request")
                )
                per_req = per_req or max(one * 2.5, 1e-6)
                scale = per_req / one if one > 0 else 1.0
            else:
                per_req, scale = per_req or 0.001, 1.0
            requests = max(1, round(usage / per_req))
            per_prompt, per_completion, per_reasoning = (
                round(n * scale) for n in (prompt_1, completion_1, reasoning_1)
            )
            surge = k.surge if k.surge is not None and k.surge.model == model else None
            share = surge.share_of(day) if surge is not None else 0.0
            if surge is not None and share > 0:  # the runaway part of the day: more calls, longer, dearer
                extra = requests * share * (surge.requests - 1)
                requests = max(1, round(requests + extra))
                usage *= 1 + share * (surge.spend - 1)
                per_prompt, per_completion, per_reasoning = (
                    round(n * (1 + share * (surge.tokens - 1))) for n in (per_prompt, per_completion, per_reasoning)
                )
            prompt = requests * per_prompt
            rows.append(
                {
                    "date": day.isoformat(),
                    "model": model,
                    "model_permaslug": slug,
                    "endpoint_id": _uuid_from("endpoint", model, provider),
                    "provider_name": provider,
                    "usage": _money(usage),
                    "byok_usage_inference": 0.0,
                    "requests": requests,
                    "prompt_tokens": prompt,
                    "completion_tokens": requests * per_completion,
                    "reasoning_tokens": requests * per_reasoning,
                    "cached_tokens": int(prompt * cached_share),
                }
            )
        return rows

    def state(self) -> dict[str, Any]:
        """JSON-able state for /_sim/state; tokens masked."""
        with self._lock:
            now = self.now()
            keys = []
            for k in self.keys.values():
                item = self._list_item(k, now)
                item.update(
                    token=mask_token(k.token),
                    is_management_key=k.is_management,
                    spend_per_day=k.spend_per_day,
                    activity_per_day=k.history_rate(),
                    expired=self._expired(k, now),
                )
                keys.append(item)
            usage = self._account_usage(now)
            return {
                "scenario": self.scenario,
                "url": self.url,
                "now": iso(now),
                "failure": {"name": self.failure.name, "count": self.failure.count},
                "delay": self.delay,
                "account": {
                    "total_credits": _money(self.account.total_credits),
                    "total_usage": _money(usage),
                    "balance": _money(self.account.total_credits - usage),
                },
                "keys": keys,
            }

    # ---- the API ---------------------------------------------------------------------------
    def _api(self, path: str, query: dict[str, str], token: str | None) -> _Reply:
        sub = path[len("/api/v1") :].rstrip("/") or "/"
        with self._lock:
            now = self.now()
            if sub == "/models":
                return self._models(query, now)  # public: no key needed
            known = ("/key", "/auth/key", "/credits", "/activity", "/keys", "/workspaces")
            if sub not in known and not sub.startswith(("/keys/", "/workspaces/")):
                return _error(404, f"Not Found: {path}")
            if not token:
                return _error(401, "Missing Authentication header")
            k = self.keys.get(token)
            if k is None:
                return _error(401, "User not found.")
            if k.disabled:
                return _error(401, "API key is disabled")
            if self._expired(k, now):
                return _error(401, "API key has expired")
            if sub in ("/key", "/auth/key"):
                return _Reply(200, {"data": self._key_data(k, now)})
            if sub == "/credits":
                if k.is_management:
                    usage = self._account_usage(now)
                    return _Reply(
                        200,
                        {"data": {"total_credits": _money(self.account.total_credits), "total_usage": _money(usage)}},
                    )
                if self.scenario == "credits-zero-quirk":
                    return _Reply(200, {"data": {"total_credits": 0, "total_usage": 0}})
                return _error(403, "Only management keys can perform this operation")
            if not k.is_management:
                return _error(403, "Only management keys can perform this operation")
            if sub == "/activity":
                return self._activity(query, now)
            if sub == "/keys":
                return self._list_keys(query, now)
            if sub.startswith("/workspaces"):
                return self._workspaces(sub, now)
            other = self.by_hash(sub[len("/keys/") :])
            if other is not None and not other.is_management:
                return _Reply(200, {"data": self._list_item(other, now)})
            return _error(404, "API key not found")

    def _models(self, query: dict[str, str], now: datetime) -> _Reply:
        """The catalogue, a page at a time: `links.next` and `total_count` like today's answers."""
        try:
            offset = int(query.get("offset") or 0)
            limit = int(query.get("limit") or self.models_page_size)
        except ValueError:
            return _error(400, "offset and limit must be integers")
        if offset < 0 or limit < 1:
            return _error(400, "offset must be >= 0 and limit >= 1")
        items = [model_entry(item, now.date(), self.retiring) for item in self.catalogue]
        page = items[offset : offset + limit]
        body: dict[str, Any] = {"data": page, "total_count": len(items)}
        if offset + limit < len(items):
            body["links"] = {"next": f"/api/v1/models?offset={offset + limit}&limit={limit}"}
        return _Reply(200, body)

    def by_hash(self, wanted: str | None) -> SimKey | None:
        """The key with this hash, from an index checked against `keys` on every hit and rebuilt on a miss
        (keys come and go through several paths; a stale entry is never served)."""
        found = self._hash_index.get(wanted)
        if found is None or self.keys.get(found.token) is not found:
            self._hash_index = {k.hash: k for k in self.keys.values()}
            found = self._hash_index.get(wanted)
        return found

    def _activity(self, query: dict[str, str], now: datetime) -> _Reply:
        today = now.date()
        days = [today - timedelta(days=n) for n in range(ACTIVITY_DAYS, 0, -1)]  # completed days only
        if query.get("date"):
            try:
                wanted = date.fromisoformat(query["date"])
            except ValueError:
                return _error(400, "Invalid date format, expected YYYY-MM-DD")
            if wanted not in days:
                return _error(400, "Date must be within the last 30 (completed) UTC days")
            days = [wanted]
        if query.get("api_key_hash"):
            found = self.by_hash(query["api_key_hash"])
            keys = [found] if found is not None and not found.is_management else []
            if not keys:
                return _error(404, "API key not found")
        else:
            keys = [k for k in self.keys.values() if not k.is_management]
        days = [d for d in days if (today - d).days <= HISTORY_DAYS]
        if query.get("group_by") == "workspace":  # spend per workspace and day
            grouped: dict[tuple[str, str], dict[str, Any]] = {}
            for d in days:
                for k in keys:
                    for row in self.activity_rows(k, d):
                        acc = grouped.setdefault(
                            (row["date"], k.workspace_id),
                            {"date": row["date"], "workspace_id": k.workspace_id, "usage": 0.0, "requests": 0},
                        )
                        acc["usage"] = _money(acc["usage"] + row["usage"])
                        acc["requests"] += row["requests"]
            return _Reply(200, {"data": sorted(grouped.values(), key=lambda r: (r["date"], r["workspace_id"]))})
        merged: dict[tuple[str, str, str], dict[str, Any]] = {}
        for d in days:
            for k in keys:
                for row in self.activity_rows(k, d):
                    slot = (row["date"], row["model"], row["endpoint_id"])
                    if slot not in merged:
                        merged[slot] = row
                        continue
                    acc = merged[slot]
                    for f in ("usage", "byok_usage_inference"):
                        acc[f] = _money(acc[f] + row[f])
                    for f in ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
                        acc[f] += row[f]
        rows = sorted(merged.values(), key=lambda r: (r["date"], r["model"]), reverse=True)
        return _Reply(200, {"data": rows})

    def _workspaces(self, sub: str, now: datetime) -> _Reply:
        """GET /workspaces and /workspaces/{id}/budgets (the workspace budgets over its keys)."""
        if sub == "/workspaces":
            items = [
                {"id": wid, "name": name, "slug": name.lower().replace(" ", "-"), "created_at": iso(now)}
                for wid, name in self.workspaces.items()
            ]
            return _Reply(200, {"data": items})
        wid, _, rest = sub[len("/workspaces/") :].partition("/")
        if wid not in self.workspaces or rest != "budgets":
            return _error(404, "Workspace not found")
        budgets = [
            {
                "id": layer.budget_id,
                "workspace_id": wid,
                "limit_usd": _money(layer.limit_usd),
                "reset_interval": layer.reset_interval or "lifetime",
            }
            for layer in self.layers
            if layer.scope == "workspace"
            and any(self.keys[t].workspace_id == wid for t in layer.tokens if t in self.keys)
        ]
        return _Reply(200, {"data": budgets})

    def _list_keys(self, query: dict[str, str], now: datetime) -> _Reply:
        def flag(name: str) -> bool:
            return query.get(name, "").lower() in ("true", "1", "yes")

        try:
            offset = int(query.get("offset") or 0)
        except ValueError:
            return _error(400, "offset must be an integer")
        if offset < 0:
            return _error(400, "offset must be >= 0")
        workspace = query.get("workspace_id") or WORKSPACE_ID  # the default workspace unless one is named
        if workspace not in self.workspaces:
            return _error(404, "Workspace not found")
        keys = [
            k
            for k in self.keys.values()
            if not k.is_management
            and k.workspace_id == workspace
            and (flag("include_disabled") or not k.disabled)
            and (flag("include_expired") or not self._expired(k, now))
        ]
        keys.sort(key=lambda k: (k.created_at, k.name), reverse=True)  # most recent first, like the docs
        return _Reply(200, {"data": [self._list_item(k, now) for k in keys[offset : offset + PAGE_SIZE]]})

    # ---- control API -----------------------------------------------------------------------
    def _control(self, method: str, path: str, body: Any) -> _Reply:
        try:
            if path == "/_sim/inbox":  # a notification channel on loopback (the demo's): Apprise's json:// posts
                with self._lock:
                    if method == "POST":
                        self.inbox.append(body)
                        return _Reply(200, {"ok": True})
                    return _Reply(200, {"received": copy.deepcopy(self.inbox)})
            if method == "GET" and path == "/_sim/state":
                return _Reply(200, self.state())
            if method == "GET" and path == "/_sim/requests":
                with self._lock:
                    return _Reply(200, {"requests": copy.deepcopy(self.requests)})
            if method == "DELETE" and path == "/_sim/requests":
                with self._lock:
                    self.requests.clear()
                return _Reply(200, {"ok": True})
            if method != "POST":
                return _error(404, f"Not Found: {method} {path}")
            if not isinstance(body, dict):
                return _error(400, "body must be a JSON object")
            if path == "/_sim/scenario":
                self.set_scenario(str(body.get("name")))
            elif path == "/_sim/key":
                fields = dict(body)
                token = fields.pop("token", None)
                h = fields.pop("hash", None)
                if token is None and h is not None:  # state shows hashes only, so accept them too
                    token = getattr(self.by_hash(h), "token", None)
                if not isinstance(token, str):
                    return _error(400, "token (or hash of a known key) required")
                if token not in self.keys and "name" in fields:
                    self.add_key(token, fields.pop("name"), **fields)
                elif token not in self.keys:
                    return _error(404, "unknown key; give a name to add it")
                else:
                    self.set_key(token, **fields)
            elif path == "/_sim/surge":  # {"token" or "hash", "model" (null: stop), "requests", "tokens", "price"}
                token = body.get("token") or getattr(self.by_hash(body.get("hash")), "token", None)
                if token not in self.keys:
                    return _error(404, "unknown key")
                since = parse_iso(body["since"]) if body.get("since") else None
                factors = {f: float(body[f]) for f in ("requests", "tokens", "price") if f in body}
                self.set_model_surge(token, body.get("model"), since=since, **factors)
            elif path == "/_sim/account":
                self.set_account(float(body["total_credits"]), float(body["total_usage"]))
            elif path == "/_sim/failure":
                if "delay" in body:
                    self.delay = float(body["delay"])
                if "drip_interval" in body:
                    self.drip_interval = float(body["drip_interval"])
                if "name" in body:
                    self.set_failure(body["name"], body.get("count"))
            else:
                return _error(404, f"Not Found: {path}")
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, f"bad request: {exc}")
        return _Reply(200, self.state())

    def _log(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], token: str | None) -> None:
        safe = {k: (redact(v) if k.lower() in ("authorization", "x-api-key") else v) for k, v in headers.items()}
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "headers": safe,
                    "key_hash": key_hash(token) if token else None,
                    "at": iso(self.now()),
                }
            )
            if len(self.requests) > 5000:  # the demo may run for days
                del self.requests[:-5000]
        if self.log_requests:
            print(f"[sim] {method} {path} {query or ''} {safe.get('Authorization', '')}", flush=True)


_CLOUDFLARE_HTML = """<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">openrouter.ai</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript>Enable JavaScript and cookies to continue</noscript>
</div></div><div class="footer">Ray ID: <code>8f1a2b3c4d5e6f70</code> &bull;
Performance &amp; security by Cloudflare</div>
</body></html>
"""

_FAILURE_STATUS = {
    "http401": (401, "User not found."),
    "http402": (402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"),
    "http403": (403, "Key limit exceeded: a budget for this key is exhausted"),
    "http429": (429, "Rate limit exceeded: too many requests"),
    "http429-free": (
        429,
        "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
    ),
    "http500": (500, "Internal Server Error"),
    "http502": (502, "Bad Gateway: upstream returned an invalid response"),
    "http503": (503, "Service Unavailable: overloaded, try again shortly"),
}


def _mangle(data: Any, how: str) -> Any:
    """wrong-types / nan: corrupt the money fields of a normal body."""
    if isinstance(data, list):
        return [_mangle(x, how) for x in data]
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for f in ("usage", "total_usage", "total_credits"):
        if f in out:
            out[f] = str(out[f]) if how == "wrong-types" else float("nan")
    if how == "wrong-types" and "limit" in out:
        out["limit"] = [out["limit"]]
    return out


def _walk(data: Any, change: Callable[[str, Any], Any]) -> Any:
    """Every dict value through change(field name, value), in lists and nested dicts too."""
    if isinstance(data, list):
        return [_walk(x, change) for x in data]
    if isinstance(data, dict):
        return {k: change(k, _walk(v, change)) for k, v in data.items()}
    return data


def _hostile(data: Any) -> Any:
    def change(k: str, v: Any) -> Any:
        if k in ("label", "name", "model", "model_permaslug", "provider_name", "endpoint_id") and isinstance(v, str):
            return f"{v}{HOSTILE_TEXT}{HOSTILE_PAD}"
        if k == "limit_reset":
            return f"monthly\u0000{HOSTILE_PAD}"
        return v

    return _walk(data, change)


def _bad_hash(data: Any) -> Any:
    return _walk(data, lambda k, v: "z" * 70 if k == "hash" and isinstance(v, str) else v)


_HOSTILE = {"hostile-strings": _hostile, "bad-hash": _bad_hash}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the real API; every reply has a Content-Length
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart (delayed ACK)
    server_version = "openrouter-sim/1.0"
    sys_version = ""

    @property
    def sim(self) -> Simulator:
        return self.server.sim  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # requests are logged in sim.requests instead

    timeout = 120  # idle keep-alive connections are dropped after this many seconds

    def handle(self) -> None:
        sim = self.sim
        with sim._lock:
            sim._conns.add(self.connection)
        # A client that hangs up (timeouts, early close) must never take the server down.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            with sim._lock:
                sim._conns.discard(self.connection)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        if self.sim._stop_event.is_set():  # stopped: behave like a dead server
            self.close_connection = True
            return
        try:
            self._route(method)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, cred = auth.strip().partition(" ")
        return cred.strip() if scheme.lower() == "bearer" and cred.strip() else None

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path.startswith("/_sim/"):
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                self._send(_error(400, "body is not JSON"))
                return
            self._send(self.sim._control(method, path, body))
            return
        token = self._token()
        self.sim._log(method, path, query, dict(self.headers.items()), token)
        if not (path == "/api/v1" or path.startswith("/api/v1/")):
            self._send(_error(404, f"Not Found: {path}"))
            return
        failure = self.sim._take_failure(path)
        self._models_path = path.rstrip("/") == "/api/v1/models"
        if method != "GET":
            reply = _error(405, f"Method {method} not allowed here")
        else:
            reply = self.sim._api(path, query, token)
        if failure is None:
            self._send(reply)
        else:
            self._fail(failure, reply)

    def _fail(self, name: str, reply: _Reply) -> None:
        sim = self.sim
        if name == "header-drip":
            self._header_drip()
            return
        if name == "redirect":
            location = sim.redirect_to.replace("{token}", self._token() or "")
            self._raw(302, "text/html", b"<a href='elsewhere'>Found</a>", {"Location": location})
            return
        if name == "echo-key":
            token = self._token() or ""
            self._send(_error(500, f"Internal error for key {token.removeprefix('sk-or-v1-')}: upstream rejected it"))
            return
        if (
            getattr(self, "_models_path", False)
            and name in ("nan", "wrong-types", "implausible")
            and reply.status == 200
        ):
            body = dict(reply.body)
            body["data"] = _mangle_models(body.get("data"), name)
            self._send(_Reply(200, body))
            return
        if name == "implausible":
            wild = dict(sim.implausible)
            body = _walk(reply.body, lambda k, v: wild[k] if k in wild and v is not None else v)
            self._send(_Reply(reply.status, body, reply.headers))
            return
        if name in ("hostile-strings", "bad-hash"):
            self._send(_Reply(reply.status, _HOSTILE[name](reply.body), reply.headers))
            return
        if name in _FAILURE_STATUS:
            status, message = _FAILURE_STATUS[name]
            err = _error(status, message)
            if status == 429:
                reset_ms = int((time.time() + 1) * 1000)
                if name == "http429-free":  # the daily quota: it resets at the next UTC midnight
                    reset_ms = int(next_reset(sim.now(), "daily").timestamp() * 1000)
                rl = {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)}
                err.body["error"]["metadata"] = {"headers": rl}
                err.headers = {"Retry-After": "1", **rl}
            elif status == 503:
                err.headers = {"Retry-After": "1"}
            self._send(err)
            return
        if reply.status != 200 and name in ("wrong-types", "nan", "huge"):
            # These modes promise a 200; when the request itself was not OK, corrupt the PROD key view.
            with sim._lock:
                k = sim.keys.get(PROD_KEY) or next(iter(sim.keys.values()))
                reply = _Reply(200, {"data": sim._key_data(k, sim.now())})
        if name == "slow":
            sim._stop_event.wait(sim.delay)
            self._send(reply)
        elif name == "slow-body":
            self._send(reply, drip=sim.drip_interval)
        elif name == "html":
            cf = {"Server": "cloudflare", "CF-RAY": "8f1a2b3c4d5e6f70-AMS"}
            self._raw(200, "text/html; charset=UTF-8", _CLOUDFLARE_HTML.encode(), cf)
        elif name == "malformed":
            self._raw(200, "application/json", b'{"data": {"label": "sk-or-v1-sim...key", "usage": 54.7')
        elif name in ("wrong-types", "nan"):
            body = dict(reply.body)
            body["data"] = _mangle(body.get("data"), name)
            self._send(_Reply(200, body))
        elif name == "empty":
            self._send(_Reply(200, {}))
        elif name == "huge":
            self._huge(reply.body)

    def _header_drip(self) -> None:
        """What no per-read timeout catches: a byte every drip_interval, headers that never end."""
        sim = self.sim
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        ends = time.monotonic() + sim.header_drip_seconds
        n = 0
        while time.monotonic() < ends:
            for i in range(len(line := f"X-Drip-{n}: 1\r\n".encode())):
                if sim._stop_event.wait(sim.drip_interval):
                    return
                self.wfile.write(line[i : i + 1])  # a gone client ends this with BrokenPipeError
            n += 1

    def _send(self, reply: _Reply, drip: float | None = None) -> None:
        raw = json.dumps(reply.body).encode()  # allow_nan: the "nan" mode relies on Python emitting NaN
        self._raw(reply.status, "application/json", raw, reply.headers, drip)

    def _raw(
        self, status: int, ctype: str, raw: bytes, headers: dict[str, str] | None = None, drip: float | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if drip is None:
            self.wfile.write(raw)
            return
        stop = self.sim._stop_event
        for i in range(len(raw)):
            if stop.is_set():
                self.close_connection = True
                return
            self.wfile.write(raw[i : i + 1])
            self.wfile.flush()
            stop.wait(drip)

    def _huge(self, body: Any) -> None:
        """A valid ~20 MB JSON document: the normal body plus a giant padding array, streamed."""
        head = json.dumps(body)[:-1].encode() + b', "padding": ['
        item = b'"' + b"x" * 1022 + b'"'
        n = max(1, self.sim.huge_bytes // (len(item) + 1))
        tail = b"]}"
        total = len(head) + n * len(item) + (n - 1) + len(tail)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        self.wfile.write(head)
        batch = b",".join([item] * 64)
        written = 0
        stop = self.sim._stop_event
        while written < n:
            if stop.is_set():
                self.close_connection = True
                return
            m = min(64, n - written)
            chunk = batch if m == 64 else b",".join([item] * m)
            self.wfile.write((b"," if written else b"") + chunk)
            written += m
        self.wfile.write(tail)
