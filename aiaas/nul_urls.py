"""A URL with a NUL character is refused with 400 `invalid_url` before any application
reads it. PostgreSQL can neither store nor compare NUL, so an id or a filter
carrying one reached a query and failed there as a 500, in whichever view of the
gateway, /v1's Django resources, /api or the pages passed it on. The refusal
carries the headers every answer of its surface does: x-request-id, and on /v1
x-aiaas-overhead-ms."""

from __future__ import annotations

import json
import time
import uuid

from starlette.types import ASGIApp, Receive, Scope, Send

from aiaas.api_errors import error_body

MESSAGE = "The URL must not contain NUL characters."


def has_nul(scope: Scope) -> bool:
    """`path` is decoded; the query string arrives percent-encoded, as clients send it."""
    return "\x00" in scope["path"] or b"%00" in scope["query_string"]


class NulUrlMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_nul(scope):
            await refuse(scope, send, time.perf_counter())
            return
        await self.app(scope, receive, send)


async def refuse(scope: Scope, send: Send, started: float) -> None:
    body = json.dumps(error_body(400, MESSAGE, "invalid_url")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
    ]
    if scope["path"].startswith("/v1/"):
        headers.append((b"x-aiaas-overhead-ms", f"{(time.perf_counter() - started) * 1000:.2f}".encode()))
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
