"""The WebSocket counters of this process, served in Prometheus' text format at /metrics.

The platform had no metrics endpoint before this one; these are plain
in-process numbers (one uvicorn process = one set), read by `GET /metrics`
(aiaas/asgi.py), which carries no tenant data. It answers only a scraper that
sends `Authorization: Bearer <METRICS_TOKEN>`, or, when METRICS_TOKEN is
unset, a client on the loopback interface (behind a proxy on the same host,
run uvicorn with --proxy-headers, or every client looks local).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass

from django.conf import settings
from starlette.types import Receive, Scope, Send

from aiaas.api_errors import error_body


@dataclass
class RealtimeMetrics:
    active_connections: int = 0  # accepted WebSockets not yet closed
    backpressure_coalesced: int = 0  # chunk events merged into the one before them
    send_errors: int = 0  # sends that failed or stalled past REALTIME_STALLED_READER_SECONDS

    def exposition(self) -> str:
        return "".join(
            [
                "# HELP ws_active_connections Accepted WebSocket connections not yet closed.\n",
                "# TYPE ws_active_connections gauge\n",
                f"ws_active_connections {self.active_connections}\n",
                "# HELP ws_backpressure_coalesced Chunk events merged into the one before them.\n",
                "# TYPE ws_backpressure_coalesced counter\n",
                f"ws_backpressure_coalesced {self.backpressure_coalesced}\n",
                "# HELP ws_send_errors WebSocket sends that failed or stalled.\n",
                "# TYPE ws_send_errors counter\n",
                f"ws_send_errors {self.send_errors}\n",
            ]
        )


METRICS = RealtimeMetrics()


async def metrics_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    refusal = access_refusal(scope)
    if refusal is not None:
        status, message, code = refusal
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        body = json.dumps(error_body(status, message, code)).encode()
        await send({"type": "http.response.body", "body": body})
        return
    exposition = METRICS.exposition().encode()
    headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": exposition})


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
