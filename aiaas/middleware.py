from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from aiaas import logs
from aiaas.health import readiness


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
    """Answer /healthz and /readyz on every host, before host validation and
    tenant resolution, so probes work whatever Host header they send."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            checks = readiness()
            ready = all(state == "ok" for state in checks.values())
            return JsonResponse(
                {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
            )
        return self.get_response(request)
