"""The access log: one line per HTTP request, written when its response ends.

It replaces uvicorn's, which writes the path with its query string (a stream
token in `?token=` among them). A line names the method, the route (the
matched pattern when one matched, else the path, never the query), the
status, the duration, the client's address (a forwarded one only from
TRUSTED_PROXIES, aiaas/proxies.py) and the request id, and carries the request's context
(aiaas/logs.py) like every other line.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiaas import logs

logger = logging.getLogger("aiaas.access")
# The status logged for a request that ended without a response: the client went away.
NO_RESPONSE_STATUS = 499


class AccessLogMiddleware:
    """Each HTTP request in a log context of its own, and (`enabled`) its access log line."""

    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = logs.begin()
        if not self.enabled:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = NO_RESPONSE_STATUS

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                context.request_id = context.request_id or response_request_id(message)
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            context.route = context.route or scope["path"]
            logger.info(
                "%s %s %s %.2fms",
                scope["method"],
                context.route,
                status,
                duration_ms,
                extra={
                    "method": scope["method"],
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": client_address(scope),
                },
            )


def response_request_id(message: Message) -> str:
    for name, value in message.get("headers", ()):
        if name.lower() == b"x-request-id":
            return str(value.decode("latin-1"))
    return ""


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""
