"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

from opentelemetry import trace

_enabled = False


def enabled() -> bool:
    return _enabled


def current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids, in hex, when there is one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
