"""CORS on the gateway's /v1 (aiaas/cors.py decides, as for Django's /api).

Wraps the Starlette app: a preflight is answered here, before any key is
asked for; any other answer gets its CORS headers as it starts, from the
origins of the tenant whose key the endpoint authenticated
(`request.state.api_key`, set by `authorized` in http.py). An answer given
before a key was accepted (a 401, say) carries none: the page cannot read it.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiaas.api_errors import error_body
from aiaas.cors import is_preflight, preflight_headers, response_headers
from tenants.cors import known_origins
from tenants.models import ApiKey

REFUSED_PREFLIGHT = error_body(
    403,
    "This origin may not call the API: no tenant allows it, or the method is not served.",
    "origin_not_allowed",
)


class CorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        if is_preflight(scope["method"], headers):
            answer = preflight_headers(headers, await known_origins.aget())
            await preflight_response(answer)(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                api_key = scope.get("state", {}).get("api_key")
                allowed: Collection[str] = (
                    api_key.tenant.cors_allowed_origins if isinstance(api_key, ApiKey) else ()
                )
                message = {**message, "headers": with_cors(message.get("headers", []), origin, allowed)}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def with_cors(
    headers: list[tuple[bytes, bytes]], origin: str, allowed: Collection[str]
) -> list[tuple[bytes, bytes]]:
    """The answer's headers with CORS's; Vary keeps what the answer said and adds Origin."""
    added = response_headers(origin, allowed)
    vary = [value for name, value in headers if name.lower() == b"vary"]
    merged = [(name, value) for name, value in headers if name.lower() != b"vary"]
    merged.append((b"vary", b", ".join([*vary, added.pop("vary").encode()])))
    merged.extend((name.encode(), value.encode("latin-1")) for name, value in added.items())
    return merged


def preflight_response(answer: dict[str, str] | None) -> Response:
    if answer is None:
        return Response(orjson.dumps(REFUSED_PREFLIGHT), 403, media_type="application/json")
    return Response(status_code=204, headers=answer)
