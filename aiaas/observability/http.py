"""Every HTTP request counted and timed (aiaas_http_requests_total and
aiaas_http_request_duration_seconds), by its route template, never its path:
the gateway's Starlette route, Django's URL pattern (RouteLabelMiddleware), or
one of the platform's own paths; anything else is `unmatched`. Bounded labels,
so a scan of random URLs adds no series."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiaas.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, series, status_class

OBSERVATION = "aiaas.observation"
PLATFORM_PATHS = frozenset({"/metrics", "/healthz", "/livez", "/readyz"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


@dataclass(slots=True)
class Observation:
    """What the apps under `observed` report of a request: shared by reference,
    so a copy of the scope (Django's, a middleware's) still reaches it."""

    route: str = ""
    status: int = 500  # until a response starts: a request that raised is a 5xx


def observed(app: ASGIApp) -> Callable[[Scope, Receive, Send], Any]:
    """`app`, with each HTTP request's count and duration recorded once it is answered."""

    async def observe(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        observation = scope[OBSERVATION] = Observation()

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                observation.status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_observed)
        finally:
            route = route_of(scope, observation)
            method = scope["method"] if scope["method"] in METHODS else "other"
            series(HTTP_REQUESTS, route, method, status_class(observation.status)).inc()
            series(HTTP_REQUEST_DURATION, route, method).observe(time.perf_counter() - started)

    return observe


def route_of(scope: Scope, observation: Observation) -> str:
    starlette_route = scope.get("route")
    if starlette_route is not None:
        return str(starlette_route.path)
    if observation.route:
        return observation.route
    return scope["path"] if scope["path"] in PLATFORM_PATHS else UNMATCHED


def record_route(scope: dict[str, Any] | None, route: str) -> None:
    """Name the route template of a request `observed` is counting (no-op outside it)."""
    observation = (scope or {}).get(OBSERVATION)
    if observation is not None:
        observation.route = route
