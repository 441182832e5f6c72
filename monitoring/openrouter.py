"""The one HTTP seam to OpenRouter: fetch, validate, and return plain snapshots.

Knows HTTP and the API's schema, not the database. Every failure is an `OpenRouterError` whose
message is one line a person can act on, and never contains the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
import urllib3

from .logredact import redact

MAX_BODY_BYTES = 2 * 1024 * 1024  # /keys pages and /activity stay far below this
KEYS_PAGE_SIZE = 100
MAX_RETRY_AFTER = 30.0  # seconds: longer waits are reported, not slept through
KEYS_URL = "https://openrouter.ai/keys"


class OpenRouterError(Exception):
    """A check could not be made. `status` is the HTTP status when there was one."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None, retryable: bool = False
    ):
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


# --- validation helpers: a hostile or broken body is rejected with a clear reason ---------------


def _number(data: dict, name: str, nullable: bool = False, required: bool = True) -> float | None:
    value = data.get(name)
    if value is None:
        if nullable or (not required and name not in data):
            return None
        raise OpenRouterError(f"OpenRouter sent an unexpected response: `{name}` is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OpenRouterError(
            f"OpenRouter sent an unexpected response: `{name}` is {type(value).__name__}, not a number"
        )
    if not math.isfinite(value):
        raise OpenRouterError(f"OpenRouter sent an unexpected response: `{name}` is not a finite number")
    return float(value)


def _text(data: dict, name: str, nullable: bool = True) -> str | None:
    value = data.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise OpenRouterError(f"OpenRouter sent an unexpected response: `{name}` is not text")
    return value[:200]


def _bool(data: dict, name: str) -> bool | None:
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise OpenRouterError(f"OpenRouter sent an unexpected response: `{name}` is not true/false")


def _datetime(data: dict, name: str) -> datetime | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise OpenRouterError(f"OpenRouter sent an unexpected response: `{name}` is not a date") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class Client:
    """A small OpenRouter client: 30 s budget per call, short bounded retries on 429/5xx."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://openrouter.ai/api/v1",
        timeout: float = 30.0,
        max_retries: int = 2,
        referer: str = "",
        title: str = "",
        session: requests.Session | None = None,
    ):
        if not api_key:
            raise OpenRouterError("OPENROUTER_API_KEY not set: add it to .env or the environment")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.session = session or requests.Session()
        self.headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        if referer:
            self.headers["HTTP-Referer"] = referer
        if title:
            self.headers["X-Title"] = title

    @classmethod
    def from_settings(cls, api_key: str | None = None) -> Client:
        from django.conf import settings

        return cls(
            api_key if api_key is not None else settings.OPENROUTER_API_KEY,
            base_url=settings.OPENROUTER_BASE_URL,
            timeout=settings.OPENROUTER_TIMEOUT,
            max_retries=settings.OPENROUTER_MAX_RETRIES,
            referer=settings.OPENROUTER_HTTP_REFERER,
            title=settings.OPENROUTER_X_TITLE,
        )

    # --- transport ---------------------------------------------------------------------------

    def get_json(self, path: str, params: dict | None = None) -> dict:
        """GET a path, retrying transient failures, and return the decoded JSON object."""
        attempt = 0
        while True:
            try:
                return self._get_once(path, params)
            except OpenRouterError as exc:
                wait = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
                # Only 429/5xx and refused connections are worth a second try; a timeout already
                # spent the whole budget and a malformed body will not fix itself in a second.
                if not exc.retryable or attempt >= self.max_retries or wait > MAX_RETRY_AFTER:
                    raise
                attempt += 1
                time.sleep(wait)

    def _get_once(self, path: str, params: dict | None) -> dict:
        url = f"{self.base_url}{path}"
        deadline = time.monotonic() + self.timeout
        try:
            response = self.session.get(
                url, headers=self.headers, params=params, timeout=(min(10.0, self.timeout), self.timeout), stream=True
            )
        except requests.Timeout:
            raise OpenRouterError(
                f"OpenRouter did not answer within {self.timeout:g} s: retry in a few minutes"
            ) from None
        except requests.RequestException as exc:
            reason = redact(type(exc).__name__)
            raise OpenRouterError(
                f"Cannot reach OpenRouter at {self.base_url} ({reason}): check the network", retryable=True
            ) from None
        with response:
            body = self._read_body(response, deadline)
        if response.status_code != 200:
            raise self._http_error(response, body)
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type:
            kind = content_type.split(";")[0] or "no content type"
            raise OpenRouterError(
                f"OpenRouter sent an unexpected response: {kind} instead of JSON (a proxy or outage page?)"
            )
        try:
            decoded = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            reason = str(exc).split(":")[0] if "not valid JSON" in str(exc) else "malformed JSON"
            raise OpenRouterError(f"OpenRouter sent an unexpected response: {reason}") from None
        if not isinstance(decoded, dict):
            raise OpenRouterError("OpenRouter sent an unexpected response: not a JSON object")
        return decoded

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise OpenRouterError(
                f"OpenRouter sent an unexpected response: body of {int(declared)} bytes exceeds {MAX_BODY_BYTES}"
            )
        chunks, size = [], 0
        try:
            # read1 returns what has arrived, so a body dripping byte by byte still meets the deadline.
            while chunk := response.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise OpenRouterError(
                        f"OpenRouter sent an unexpected response: body larger than {MAX_BODY_BYTES} bytes"
                    )
                if time.monotonic() > deadline:
                    raise OpenRouterError(
                        f"OpenRouter did not finish answering within {self.timeout:g} s: retry in a few minutes"
                    )
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            raise OpenRouterError(
                f"OpenRouter did not finish answering within {self.timeout:g} s: retry in a few minutes"
            ) from None
        return b"".join(chunks)

    def _http_error(self, response: requests.Response, body: bytes) -> OpenRouterError:
        status = response.status_code
        detail = ""
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            if isinstance(message, str):
                detail = redact(" ".join(message.split()))[:160]
        except (ValueError, AttributeError, RecursionError):
            pass
        retry_after = None
        header = response.headers.get("Retry-After", "")
        try:
            retry_after = max(0.0, float(header)) if header else None
        except ValueError:
            retry_after = None
        advice = {
            401: f"the key is invalid or disabled: get a new one at {KEYS_URL}",
            402: "the account has no credits left: top up at https://openrouter.ai/settings/credits",
            403: "the key is not allowed to do this (a management key is needed, or a budget is exhausted)",
            404: "not found: check OPENROUTER_BASE_URL",
            429: "rate limited: retry in a few minutes",
        }.get(status, "OpenRouter is having trouble: retry in a few minutes; the failure is recorded")
        said = f" ({detail})" if detail else ""
        retryable = status == 429 or status >= 500
        return OpenRouterError(f"OpenRouter API error ({status}){said}: {advice}", status, retry_after, retryable)

    # --- endpoints -----------------------------------------------------------------------------

    def get_key(self) -> KeySnapshot:
        """GET /key: the key's own usage, cap and what is left of it."""
        payload = self.get_json("/key")
        data = payload.get("data")
        if not isinstance(data, dict):
            raise OpenRouterError("OpenRouter sent an unexpected response: no `data` object")
        rate_limit = data.get("rate_limit")
        return KeySnapshot(
            label=_text(data, "label") or "",
            usage=_number(data, "usage"),
            limit=_number(data, "limit", nullable=True),
            limit_remaining=_number(data, "limit_remaining", nullable=True),
            limit_reset=_text(data, "limit_reset"),
            usage_daily=_number(data, "usage_daily", required=False),
            usage_weekly=_number(data, "usage_weekly", required=False),
            usage_monthly=_number(data, "usage_monthly", required=False),
            byok_usage=_number(data, "byok_usage", required=False),
            is_free_tier=_bool(data, "is_free_tier"),
            is_management_key=bool(_bool(data, "is_management_key") or _bool(data, "is_provisioning_key")),
            expires_at=_datetime(data, "expires_at"),
            rate_limit=rate_limit if isinstance(rate_limit, dict) else None,
            raw=payload,
        )

    def get_credits(self) -> AccountCredits:
        """GET /credits: purchased and used credits of the whole account (management key)."""
        data = self.get_json("/credits").get("data")
        if not isinstance(data, dict):
            raise OpenRouterError("OpenRouter sent an unexpected response: no `data` object")
        return AccountCredits(_number(data, "total_credits"), _number(data, "total_usage"))

    def list_keys(self, include_disabled: bool = False, include_expired: bool = False) -> list[ListedKey]:
        """GET /keys, every page (offset pagination, 100 a page)."""
        keys: list[ListedKey] = []
        offset = 0
        while True:
            params = {"offset": offset}
            if include_disabled:
                params["include_disabled"] = "true"
            if include_expired:
                params["include_expired"] = "true"
            items = self.get_json("/keys", params).get("data")
            if not isinstance(items, list):
                raise OpenRouterError("OpenRouter sent an unexpected response: `data` is not a list")
            for item in items:
                if not isinstance(item, dict):
                    raise OpenRouterError("OpenRouter sent an unexpected response: a key is not an object")
                keys.append(
                    ListedKey(
                        hash=_text(item, "hash", nullable=False),
                        name=_text(item, "name") or "",
                        label=_text(item, "label") or "",
                        disabled=bool(_bool(item, "disabled")),
                        usage=_number(item, "usage"),
                        limit=_number(item, "limit", nullable=True),
                        limit_remaining=_number(item, "limit_remaining", nullable=True),
                        limit_reset=_text(item, "limit_reset"),
                        usage_daily=_number(item, "usage_daily", required=False),
                        usage_weekly=_number(item, "usage_weekly", required=False),
                        usage_monthly=_number(item, "usage_monthly", required=False),
                        expires_at=_datetime(item, "expires_at"),
                        created_at=_datetime(item, "created_at"),
                        raw=item,
                        byok_usage=_number(item, "byok_usage", required=False),
                    )
                )
            if len(items) < KEYS_PAGE_SIZE:
                return keys
            offset += KEYS_PAGE_SIZE

    def get_activity(self, date: str | None = None, api_key_hash: str | None = None) -> list[dict]:
        """GET /activity: daily spend per model endpoint over the last 30 completed UTC days."""
        params = {k: v for k, v in {"date": date, "api_key_hash": api_key_hash}.items() if v}
        items = self.get_json("/activity", params or None).get("data")
        if not isinstance(items, list):
            raise OpenRouterError("OpenRouter sent an unexpected response: `data` is not a list")
        rows = []
        for item in items:
            if not isinstance(item, dict):
                raise OpenRouterError("OpenRouter sent an unexpected response: an activity row is not an object")
            rows.append(
                {
                    "date": _text(item, "date", nullable=False),
                    "model": _text(item, "model", nullable=False),
                    "model_permaslug": _text(item, "model_permaslug") or "",
                    "endpoint_id": _text(item, "endpoint_id") or "",
                    "provider_name": _text(item, "provider_name") or "",
                    "usage": _number(item, "usage"),
                    "byok_usage_inference": _number(item, "byok_usage_inference", required=False) or 0.0,
                    "requests": int(_number(item, "requests", required=False) or 0),
                    "prompt_tokens": int(_number(item, "prompt_tokens", required=False) or 0),
                    "completion_tokens": int(_number(item, "completion_tokens", required=False) or 0),
                    "reasoning_tokens": int(_number(item, "reasoning_tokens", required=False) or 0),
                    "cached_tokens": int(_number(item, "cached_tokens", required=False) or 0),
                }
            )
        return rows
