"""The metrics as Prometheus scrapes them: `GET /metrics` and the internal listener.

`/metrics` answers only `Authorization: Bearer <METRICS_TOKEN>` (compared in
constant time); without the token, with a wrong one, or when METRICS_TOKEN is
unset, the request goes on to Django, which answers its ordinary 404, so a
prober learns nothing. With METRICS_LISTEN (an internal-only host:port), the web
process also serves them there without authentication (`start_listener`).

With PROMETHEUS_MULTIPROC_DIR set, a scrape reads every process's files in it
(prometheus_client's MultiProcessCollector); else this process's registry.
"""

from __future__ import annotations

import hmac
import logging
import os
from wsgiref.simple_server import WSGIServer

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    start_http_server,
)
from starlette.types import Receive, Scope, Send

import aiaas.observability.metrics  # noqa: F401 - the metrics registered before any scrape

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
logger = logging.getLogger(__name__)


def registry() -> CollectorRegistry:
    """What a scrape reads: every process's values in multiprocess mode, else this process's."""
    if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def may_read(scope: Scope) -> bool:
    """Whether the request carries the metrics token (never, when none is set)."""
    sent = [value for name, value in scope["headers"] if name == b"authorization"]
    return len(sent) == 1 and bears_token(sent[0])


def bears_token(authorization: bytes) -> bool:
    """Whether an Authorization header is `Bearer <METRICS_TOKEN>` (constant time)."""
    token: str = settings.METRICS_TOKEN
    return bool(token) and hmac.compare_digest(authorization, b"Bearer " + token.encode())


async def metrics_application(scope: Scope, receive: Receive, send: Send) -> None:
    """The exposition, to a caller `may_read` admitted."""
    headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": generate_latest(registry())})


def start_listener() -> WSGIServer | None:
    """Serve the metrics unauthenticated on METRICS_LISTEN (host:port), if set; the
    server, or None when none started here.

    Several uvicorn workers each try; the first binds and the others find the
    port taken, which is fine: in multiprocess mode any one of them serves all.
    """
    address: str = settings.METRICS_LISTEN
    if not address:
        return None
    host, _, port = address.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry())
    except OSError as error:
        logger.info("metrics listener %s not started here: %s", address, error)
        return None
    return server


def mark_process_dead() -> None:
    """Drop this process's live gauges (open WebSockets) from the shared files on exit."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
