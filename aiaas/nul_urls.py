"""A URL with a NUL character is refused with 400 `invalid_url` before any application
reads it. PostgreSQL can neither store nor compare NUL, so an id or a filter
carrying one reached a query and failed there as a 500, in whichever view of the
gateway, /v1's Django resources, /api or the pages passed it on."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from aiaas.request_limits import refuse


def has_nul(scope: Scope) -> bool:
    """`path` is decoded; the query string arrives percent-encoded, as clients send it."""
    return "\x00" in scope["path"] or b"%00" in scope["query_string"]


class NulUrlMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_nul(scope):
            await refuse(send, 400, "The URL must not contain NUL characters.", "invalid_url")
            return
        await self.app(scope, receive, send)
