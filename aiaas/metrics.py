"""This process's counters at `GET /metrics`, in Prometheus' text format.

It answers only a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`,
or, when METRICS_TOKEN is unset, a client on the loopback interface (behind a
proxy on the same host, run uvicorn with --proxy-headers, or every client
looks local). What it serves is composed in aiaas/asgi.py from the apps'
counters (realtime's WebSockets, the gateway's requests).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable

from django.conf import settings
from starlette.types import ASGIApp, Receive, Scope, Send

from aiaas.api_errors import error_body


def metrics_endpoint(exposition: Callable[[], str]) -> ASGIApp:
    """An ASGI app serving `exposition()` to scrapers that may read it."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = access_refusal(scope)
        if refusal is not None:
            status, message, code = refusal
            headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            body = json.dumps(error_body(status, message, code)).encode()
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": exposition().encode()})

    return serve


def access_refusal(scope: Scope) -> tuple[int, str, str] | None:
    """None when the request may read the metrics, else (status, message, code)."""
    token: str = settings.METRICS_TOKEN
    if not token:
        if is_loopback(scope.get("client")):
            return None
        return 403, "Metrics are served to loopback clients only until METRICS_TOKEN is set.", "forbidden"
    sent = dict(scope["headers"]).get(b"authorization", b"")
    if hmac.compare_digest(sent, b"Bearer " + token.encode()):
        return None
    return 401, "Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.", "invalid_metrics_token"


def is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:  # a Unix socket's peer has no address
        return False
