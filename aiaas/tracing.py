"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

On (`install_if_configured`, called by the ASGI and Celery entry points before
Django loads its middleware): spans are exported by OTLP over HTTP; every HTTP
request gets a server span (the W3C traceparent it carries is its parent);
Django, Celery (the context travels in each message), Redis, psycopg and the
aiohttp provider client are instrumented; the gateway opens its own spans
(`span`: route, admit, provider call, settle), each naming the tenant schema.
Secrets in the request spans' attributes (a `?token=` in a URL) are redacted.

Off, nothing is installed: `span` hands back one shared no-op context and
`traced_http` calls the application straight through.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Receive, Scope, Send

from aiaas import logs
from aiaas.redaction import redact

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TENANT_ATTRIBUTE = "aiaas.tenant.schema"
NO_SPAN: AbstractContextManager[object] = contextlib.nullcontext()

_enabled = False
_provider: TracerProvider | None = None
tracer = trace.get_tracer("aiaas")


def enabled() -> bool:
    return _enabled


def install_if_configured() -> None:
    if os.environ.get(ENDPOINT_VARIABLE) and not _enabled:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        install(BatchSpanProcessor(OTLPSpanExporter()))


def install(processor: SpanProcessor) -> None:
    """Send spans to `processor` and instrument the libraries (each once)."""
    global _enabled, _provider
    if _provider is None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        _provider = TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "aiaas")})
        )
        trace.set_tracer_provider(_provider)
    _provider.add_span_processor(processor)
    for instrumentor in instrumentors():
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**instrumentor_options(instrumentor))
    run_django_middleware_last()
    _enabled = True


def uninstall() -> None:
    """Remove the instrumentation; spans already ended stay with their processors."""
    global _enabled
    _enabled = False
    for instrumentor in instrumentors():
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def instrumentors() -> list[Any]:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    # Each is a singleton: the same object every call.
    return [
        DjangoInstrumentor(),
        CeleryInstrumentor(),  # type: ignore[no-untyped-call]
        RedisInstrumentor(),
        PsycopgInstrumentor(),
        AioHttpClientInstrumentor(),
    ]


def instrumentor_options(instrumentor: Any) -> dict[str, Any]:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    return {"request_hook": redact_attributes} if isinstance(instrumentor, DjangoInstrumentor) else {}


def run_django_middleware_last() -> None:
    """Django's instrumentation puts its middleware first, where it reads the Host
    before HealthCheckMiddleware answers probes on any host and the tenant routing
    answers a bad host with our 400: last, its span is the view's (the server
    span covers the whole request)."""
    from django.conf import settings

    middleware = list(settings.MIDDLEWARE)
    traced = [name for name in middleware if name.startswith("opentelemetry.")]
    settings.MIDDLEWARE = [name for name in middleware if name not in traced] + traced


def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> AbstractContextManager[object]:
    """A span named `name` around a block, with the tenant schema of the current
    request or task (aiaas/logs.py); a shared no-op while tracing is off."""
    if not _enabled:
        return NO_SPAN
    context = logs.current()
    merged = dict(attributes or {})
    if context is not None and context.tenant_schema:
        merged[TENANT_ATTRIBUTE] = context.tenant_schema
    return tracer.start_as_current_span(name, attributes=merged)


def traced_http(app: ASGIApp) -> ASGIApp:
    """`app` with a server span per HTTP request while tracing is on (Django's
    own span, and the gateway's, are inside it)."""
    traced: ASGIApp | None = None

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal traced
        if not _enabled:
            await app(scope, receive, send)
            return
        if traced is None:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            traced = OpenTelemetryMiddleware(
                app, exclude_spans=["receive", "send"], server_request_hook=redact_attributes
            )
        await traced(scope, receive, send)

    return application


def redact_attributes(span: trace.Span, *request: Any) -> None:
    """Redact the span's string attributes (the URL and its query string among
    them): the server span's and Django's request hook, called once they are set."""
    for key, value in (getattr(span, "attributes", None) or {}).items():
        if isinstance(value, str) and (clean := redact(value)) != value:
            span.set_attribute(key, clean)
