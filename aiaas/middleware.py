from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from aiaas import logs
from aiaas.health import readiness
from aiaas.observability.exposition import bears_token
from aiaas.observability.http import record_route

LIVENESS_PATHS = frozenset({"/livez", "/healthz"})
# Patterns that answer any path (aiaas/urls_api.py): counted as `unmatched`.
CATCH_ALL_URL_NAMES = frozenset({"unknown-url"})


class LogContextMiddleware:
    """Give each Django request an id, in its log lines and its x-request-id header
    (the gateway names its own), and name the route that matched in its lines."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = f"req_{uuid.uuid4().hex}"
        logs.bind(request_id=request_id)
        response = self.get_response(request)
        response.headers.setdefault("x-request-id", request_id)
        return response

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        if request.resolver_match is not None:
            logs.bind(route=f"/{request.resolver_match.route}")


class HealthCheckMiddleware:
    """Answer /livez (/healthz) and /readyz on every host, before host validation and
    tenant resolution, so probes work whatever Host header they send."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in LIVENESS_PATHS:
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            return readiness_response(request)
        return self.get_response(request)


def readiness_response(request: HttpRequest) -> JsonResponse:
    """Each dependency as ok or failed; why it failed only to the metrics token's bearer."""
    failures = readiness()
    body: dict[str, object] = {
        "status": "unavailable" if any(failures.values()) else "ok",
        "checks": {name: "failed" if failure else "ok" for name, failure in failures.items()},
    }
    if bears_token(request.headers.get("authorization", "").encode()):
        body["errors"] = {name: failure for name, failure in failures.items() if failure}
    return JsonResponse(body, status=503 if any(failures.values()) else 200)


class RouteLabelMiddleware:
    """Tell the HTTP metrics (aiaas/observability/http.py) which URL pattern served
    the request: its template, never its path, so ids add no series."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if match is not None and match.url_name not in CATCH_ALL_URL_NAMES:
            record_route(getattr(request, "scope", None), f"/{match.route}")
        return response
