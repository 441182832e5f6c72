"""The gate in front of /mcp on the web server: the bearer token, the Host header, no caching.

Apart from the MCP SDK (monitoring.mcp_server) on purpose: with neither API_TOKEN nor API_OPERATOR_TOKEN set, /mcp
is off, and the web worker then never imports the SDK (pydantic, starlette, httpx: about 40 MB of its memory,
bench/memory.py). The gate alone answers, with the same sentence as when the SDK is loaded.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from . import roles

NO_STORE = (b"cache-control", b"private, no-store")
OFF = "/mcp is off: set API_TOKEN (read) or API_OPERATOR_TOKEN (act) and restart."


def enabled() -> bool:
    """Whether any token may reach /mcp (read at start: a token set later needs a restart, as OFF says)."""
    return bool(settings.API_TOKEN or settings.API_OPERATOR_TOKEN)


class BearerGate:
    """Refuses /mcp without `Authorization: Bearer <API_TOKEN or API_OPERATOR_TOKEN>` (401, a JSON sentence),
    checks the Host header like Django, marks every answer `Cache-Control: private, no-store`. Without an inner
    app (/mcp off) it refuses every request and answers the server's lifespan events itself."""

    def __init__(self, inner=None):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if self.inner is None:
                return await lifespan(scope, receive, send)
            return await self.inner(scope, receive, send)  # lifespan: the session manager starts and stops
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin-1")
        domain, _ = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return await refuse(send, 400, f"Invalid Host header {host!r}: add it to DJANGO_ALLOWED_HOSTS.")
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        role = roles.token_role(token.strip()) if scheme.lower() == "bearer" else None
        if role is None or self.inner is None:
            if self.inner is None or not enabled():
                message = OFF
            elif token:
                message = "invalid token"
            else:
                message = "send Authorization: Bearer <API_TOKEN or API_OPERATOR_TOKEN>"
            return await refuse(send, 401, message)

        async def send_no_store(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != NO_STORE[0]]
                message = {**message, "headers": [*kept, NO_STORE]}
            await send(message)

        await self.inner(scope, receive, send_no_store)


async def lifespan(scope, receive, send) -> None:
    """Nothing to start or stop: each lifespan event is acknowledged."""
    if scope["type"] != "lifespan":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def refuse(send, code: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), NO_STORE]
    if code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="creditmon"'))
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
