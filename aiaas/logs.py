"""Log lines: one JSON object a line (LOG_FORMAT=json, the default outside DEBUG) or
text, each carrying the context of the request or task that wrote it, secrets
redacted (aiaas/redaction.py).

The context is one mutable `LogContext` per request or task, held in a context
variable. Copies of the context (the thread Django runs a view in, the tasks a
stream starts) hold the same object, so what is learnt late (the key, the
tenant, the route) reaches every later line, and the access log
(aiaas/access_log.py) written when the request ends.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from aiaas.redaction import redact

CONTEXT_FIELDS = ("request_id", "tenant_schema", "key_prefix", "route")
TRACE_FIELDS = ("trace_id", "span_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers below WARNING are noise here. httpx logs every provider call at INFO,
# ~10% of the gateway's throughput. uvicorn's access log is replaced by ours.
QUIET_LOGGERS = ("django.db.backends", "httpx", "httpcore", "pgserver")


@dataclass(slots=True)
class LogContext:
    request_id: str = ""
    tenant_schema: str = ""
    key_prefix: str = ""
    route: str = ""


_current: ContextVar[LogContext | None] = ContextVar("log_context", default=None)


def begin(request_id: str = "", route: str = "") -> LogContext:
    """A fresh context for the request or task that starts here."""
    context = LogContext(request_id=request_id, route=route)
    _current.set(context)
    return context


def current() -> LogContext | None:
    return _current.get()


def bind(
    *,
    request_id: str | None = None,
    tenant_schema: str | None = None,
    key_prefix: str | None = None,
    route: str | None = None,
) -> None:
    """Record what is now known of the current request or task on its context."""
    context = _current.get() or begin()
    if request_id is not None:
        context.request_id = request_id
    if tenant_schema is not None:
        context.tenant_schema = tenant_schema
    if key_prefix is not None:
        context.key_prefix = key_prefix
    if route is not None:
        context.route = route


class ContextFilter(logging.Filter):
    """Puts the current context's fields, those set, and with tracing on the trace
    and span ids, on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if context is not None:
            for name in CONTEXT_FIELDS:
                if value := getattr(context, name):
                    setattr(record, name, value)
        # Without tracing installed, the current span is always the invalid one.
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


class JsonFormatter(OrjsonFormatter):
    """One JSON object a line: time, level, logger, message, the context, any `extra`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn's copy of its message with terminal colours.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            **options,
        )

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(logging.Formatter):
    """A readable line for development, the context in brackets at its end."""

    def __init__(self, **options: Any) -> None:
        super().__init__(TEXT_FORMAT, **options)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{name}={value}"
            for name in (*CONTEXT_FIELDS, *TRACE_FIELDS)
            if (value := getattr(record, name, ""))
        )
        return redact(f"{line} [{fields}]" if fields else line)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING: every line through one handler, as JSON or text."""
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
            # uvicorn configures its loggers before Django does: they join ours.
            "uvicorn": {"handlers": ["console"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
