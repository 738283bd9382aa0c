from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_tenants.utils import get_public_schema_name, schema_context

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
            logs.bind(route=route_template(request.resolver_match.route))  # as the metrics label it


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
    """Each dependency as ok or failed; why it failed only to the metrics token's bearer
    or a signed-in staff member of the public site."""
    failures = readiness()
    body: dict[str, object] = {
        "status": "unavailable" if any(failures.values()) else "ok",
        "checks": {name: "failed" if failure else "ok" for name, failure in failures.items()},
    }
    if bears_token(request.headers.get("authorization", "").encode()) or is_platform_staff(request):
        body["errors"] = {name: failure for name, failure in failures.items() if failure}
    return JsonResponse(body, status=503 if any(failures.values()) else 200)


def is_platform_staff(request: HttpRequest) -> bool:
    """Whether the request's session is an active staff user's in the public schema
    (this middleware runs before sessions and tenants are resolved). A tenant's
    session, unknown there, is nobody's: it fails closed."""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return False
    with schema_context(get_public_schema_name()):
        request.session = SessionStore(session_key)
        user = get_user(request)
        return bool(user.is_active and user.is_staff)


class RouteLabelMiddleware:
    """Tell the HTTP metrics (aiaas/observability/http.py) which URL pattern served
    the request: its template, never its path, so ids add no series."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if match is not None and match.url_name not in CATCH_ALL_URL_NAMES:
            record_route(getattr(request, "scope", None), route_template(match.route))
        return response


# A regex pattern's named group (DRF's routers write `(?P<pk>[^/.]+)`), which may
# hold a bracketed class but no nested group.
NAMED_GROUP = re.compile(r"\(\?P<(\w+)>(?:\[[^\]]*\]|[^()])*\)")


def route_template(route: str) -> str:
    """A URL pattern as dashboards show it: `/api/v1/keys/{pk}/`, whether it was
    written as a path (`<int:pk>`) or as a regex (`^keys/(?P<pk>[^/.]+)/?$`)."""
    template = NAMED_GROUP.sub(r"{\1}", route)
    template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", template)
    for regex_only, plain in (("^", ""), ("$", ""), ("/?", "/"), ("\\", "")):
        template = template.replace(regex_only, plain)
    return "/" + template
