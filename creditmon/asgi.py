"""ASGI entry point (gunicorn creditmon.asgi:application -k uvicorn_worker.UvicornWorker).

/mcp is the MCP server (the SDK's streamable HTTP app, behind a bearer token); everything else is Django.
Lifespan events go to the MCP app, whose session manager runs for the life of the worker. With no token set /mcp
is off: the SDK is not even imported (about 40 MB of the web worker), and the gate alone answers why.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "creditmon.settings")
django_application = get_asgi_application()  # sets Django up before the MCP server's models are imported

from monitoring import mcp_http  # noqa: E402

if mcp_http.enabled():
    from monitoring.mcp_server import http_app

    mcp_application = http_app()
else:
    mcp_application = mcp_http.BearerGate()  # refuses every request with the sentence saying how to turn it on

MCP_PATHS = ("/mcp", "/mcp/")


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await mcp_application(scope, receive, send)
    if scope["type"] == "http" and scope["path"] in MCP_PATHS:
        # One address with or without the slash: the SDK's route is /mcp (a redirect would drop the POST body).
        return await mcp_application({**scope, "path": "/mcp", "raw_path": b"/mcp"}, receive, send)
    return await django_application(scope, receive, send)
