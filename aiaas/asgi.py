"""ASGI entry point.

HTTP under /v1/ goes to the gateway (a lean Starlette app: no Django
middleware on the hot path, docs/decisions/0005), except OpenAI's Files and
Vector Stores and Batches (/v1/files, /v1/vector_stores, /v1/batches: CRUD over the
tenant's schema, docs/decisions/0020 and 0021); other HTTP to Django; WebSockets to the Channels
consumers. Every HTTP body is read within its size and time limits: Django's by
aiaas/request_limits.py (uploads, /v1/files among them, up to the file size
limit), the gateway's as it streams them (gateway/transports/http.py).
"""

import os
import re
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.core.asgi import get_asgi_application

from aiaas import tracing

tracing.install_if_configured()  # before Django loads its middleware (docs/decisions/0027)

django_application = get_asgi_application()

from starlette.datastructures import Headers  # noqa: E402
from starlette.types import Message, Receive, Scope, Send  # noqa: E402

from aiaas.access_log import AccessLogMiddleware  # noqa: E402
from aiaas.database_threads import install_connection_returning_executor  # noqa: E402
from aiaas.nul_urls import NulUrlMiddleware  # noqa: E402
from aiaas.observability import exposition  # noqa: E402
from aiaas.observability.http import observed  # noqa: E402
from aiaas.proxies import ForwardedHeadersMiddleware  # noqa: E402
from aiaas.request_limits import BodyLimits, BoundedBodyMiddleware  # noqa: E402
from gateway.service import client_request_id  # noqa: E402
from gateway.transports.http import application as gateway_application  # noqa: E402
from gateway.transports.http import shutdown as shutdown_gateway  # noqa: E402
from gateway.transports.websocket import shutdown as shutdown_completions  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

GATEWAY_PREFIX = "/v1/"
# /v1 resources Django serves (ingestion/openai/, batches/openai/).
DJANGO_V1_RESOURCES = frozenset({"files", "vector_stores", "batches"})
METRICS_PATH = "/metrics"  # to the metrics token's bearer only (aiaas/observability/exposition.py)


# Django reads whole bodies (spooling large ones to disk): they reach it only
# within their size and time limits. The gateway streams its bodies and
# enforces the same limits itself, answering with its own headers.
bounded_django = BoundedBodyMiddleware(
    django_application,  # type: ignore[arg-type]
    BodyLimits(
        settings.MAX_REQUEST_BYTES,
        settings.REQUEST_BODY_TIMEOUT_SECONDS,
        upload_paths=re.compile(settings.UPLOAD_PATHS),
        upload_max_bytes=settings.MAX_UPLOAD_REQUEST_BYTES,
    ),
)


async def django_v1(scope: Scope, receive: Receive, send: Send) -> None:
    """Django's /v1 answers carry x-aiaas-overhead-ms and x-client-request-id as the
    gateway's do; Django waits on no provider there (a vector store's local embeddings
    are its own work), so its whole time is overhead."""
    started = time.perf_counter()
    echoed = client_request_id(Headers(scope=scope))

    async def send_timed(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", [])]
            headers.append((b"x-aiaas-overhead-ms", f"{(time.perf_counter() - started) * 1000:.2f}".encode()))
            if echoed:
                headers.append((b"x-client-request-id", echoed.encode()))
            message = {**message, "headers": headers}
        await send(message)

    await bounded_django(scope, receive, send_timed)


def served_by_django(path: str) -> bool:
    resource = path.removeprefix(GATEWAY_PREFIX).split("/", 1)[0]
    return path.startswith(GATEWAY_PREFIX) and resource in DJANGO_V1_RESOURCES


@observed
async def http_application(scope: Scope, receive: Receive, send: Send) -> None:
    if served_by_django(scope["path"]):
        await django_v1(scope, receive, send)
    elif scope["path"].startswith(GATEWAY_PREFIX):
        await gateway_application(scope, receive, send)
    elif scope["path"] == METRICS_PATH and scope["method"] == "GET" and exposition.may_read(scope):
        await exposition.metrics_application(scope, receive, send)
    else:
        await bounded_django(scope, receive, send)


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """When the server starts: threads of the default executor give back their database
    connections after each job; the metrics listener starts (METRICS_LISTEN). When it
    stops: end running WebSocket completions, close provider connections, drop this
    process's live gauges."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            install_connection_returning_executor()
            exposition.start_listener()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown_completions()
            await shutdown_gateway()
            exposition.mark_process_dead()
            await send({"type": "lifespan.shutdown.complete"})
            return


# Forwarded headers are believed from TRUSTED_PROXIES only, and dropped before anything reads them.
application = ForwardedHeadersMiddleware(
    ProtocolTypeRouter(
        {
            "http": tracing.traced_http(
                AccessLogMiddleware(NulUrlMiddleware(http_application), enabled=settings.ACCESS_LOG)
            ),
            "websocket": URLRouter(websocket_urlpatterns),
            "lifespan": lifespan,
        }
    )
)
