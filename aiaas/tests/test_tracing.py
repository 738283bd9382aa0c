"""Tracing, installed for real with an in-memory exporter: a /v1 request's spans
(route, admit, provider call, settle) under its server span, naming the tenant; a
Celery task's span in the trace of the request that sent it; no secret in an
attribute; nothing installed while tracing is off."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pytest_django import DjangoDbBlocker

from aiaas import tracing
from aiaas.celery import app, tenant_task
from aiaas.logs import ContextFilter, JsonFormatter
from testing.celery import worker_thread
from testing.tenants import TenantFixture

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
STREAM_TOKEN = "st_" + "T" * 43
SPAN_WAIT_SECONDS = 5.0
GATEWAY_SPANS = ("route", "admit", "provider call", "settle")
# The web process's and a worker's entry points, then what tracing loaded.
OFF_PROBE = """
import sys
import aiaas.asgi
from aiaas.celery import trace_worker_process
from aiaas import tracing
trace_worker_process()
print(tracing.enabled(), tracing.span("route") is tracing.NO_SPAN)
loaded = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation.")
print(sorted(m for m in sys.modules if m.startswith(loaded)))
print(any(i.is_instrumented_by_opentelemetry for i in tracing.instrumentors()))
"""


def test_off_the_entry_points_install_nothing() -> None:
    """In a process of its own: tests elsewhere in this one install tracing."""
    environ = {name: value for name, value in os.environ.items() if name != tracing.ENDPOINT_VARIABLE}
    probe = subprocess.run(  # noqa: S603 - our own probe
        [sys.executable, "-c", OFF_PROBE], env=environ, capture_output=True, text=True, timeout=60
    )

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["False", "True", "[]", "False"]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    collected = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(collected))
    try:
        yield collected
    finally:
        tracing.uninstall()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def spans_of_trace(exporter: InMemorySpanExporter, trace_id: int, *names: str) -> list[ReadableSpan]:
    """The trace's spans, once every one of `names` has ended (spans end just after a response)."""
    deadline = time.monotonic() + SPAN_WAIT_SECONDS
    while True:
        found = [span for span in exporter.get_finished_spans() if span.context.trace_id == trace_id]
        if {span.name for span in found} >= set(names) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_a_chat_request_has_the_gateways_spans_naming_its_tenant(
    gateway: str, serving_tenant: TenantFixture, spans: InMemorySpanExporter
) -> None:
    response = httpx.post(
        f"{gateway}/chat/completions",
        headers={"authorization": f"Bearer {serving_tenant.admin_key}", "traceparent": TRACEPARENT},
        json={"model": "sim-small", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
        timeout=10,
    )

    assert response.status_code == 200
    found = spans_of_trace(spans, int(TRACE_ID, 16), *GATEWAY_SPANS, "POST /v1/chat/completions")
    by_name = {span.name: span for span in found}
    server = by_name["POST /v1/chat/completions"]
    assert server.kind == SpanKind.SERVER
    for name in GATEWAY_SPANS:
        span = by_name[name]
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id, name
        assert span.attributes is not None
        assert span.attributes[tracing.TENANT_ATTRIBUTE] == serving_tenant.tenant.schema_name, name
    provider_call = by_name["provider call"].attributes
    assert provider_call is not None
    assert provider_call["aiaas.model"] == response.json()["model"]
    assert provider_call["aiaas.attempt"] == 1


def test_a_stream_token_in_a_url_never_reaches_a_span(
    gateway: str, serving_tenant: TenantFixture, spans: InMemorySpanExporter
) -> None:
    response = httpx.get(
        f"{gateway}/models?token={STREAM_TOKEN}",
        headers={"authorization": f"Bearer {serving_tenant.admin_key}", "traceparent": TRACEPARENT},
        timeout=10,
    )

    assert response.status_code == 200
    found = spans_of_trace(spans, int(TRACE_ID, 16), "GET /v1/models")
    attributes = [str(dict(span.attributes or {})) for span in found]
    assert any("token=[redacted]" in text for text in attributes), attributes
    assert not any(STREAM_TOKEN in text for text in attributes)


def test_a_line_written_in_a_span_names_its_trace_and_span(spans: InMemorySpanExporter) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", None, None)
    with tracing.span("route") as span:
        ContextFilter().filter(record)
    line = orjson.loads(JsonFormatter().format(record))

    assert isinstance(span, trace.Span)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_on_probes_and_bad_hosts_are_answered_as_before_and_a_view_has_its_span(
    serving_tenant: TenantFixture, spans: InMemorySpanExporter
) -> None:
    assert Client(HTTP_HOST="10.0.0.7").get("/healthz").status_code == 200
    refused = Client(HTTP_HOST="10.0.0.7").get("/dashboard/")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_host"

    response = serving_tenant.api_client().get("/api/v1/tenant/settings", HTTP_HOST="localhost")

    assert response.status_code == 200
    views = [span for span in spans.get_finished_spans() if span.name.startswith("GET api/")]
    assert [dict(span.attributes or {}).get("http.route") for span in views] == ["api/v1/tenant/settings/?$"]


@tenant_task(name="tests.traced_task")
def traced_task() -> str:
    return format(trace.get_current_span().get_span_context().trace_id, "032x")


@pytest.fixture(scope="module")
def celery_worker(
    exporter: InMemorySpanExporter, django_db_setup: object, django_db_blocker: DjangoDbBlocker
) -> Iterator[None]:
    """A real worker thread on this run's own default queue (testing/settings.py)."""
    with worker_thread(app.conf.task_default_queue, django_db_blocker):
        yield


def test_a_task_runs_in_the_trace_of_the_request_that_sent_it(
    celery_worker: None, tenant: TenantFixture, spans: InMemorySpanExporter
) -> None:
    with (
        tracing.tracer.start_as_current_span("enqueuing request") as request_span,
        tenant_context(tenant.tenant),
    ):
        result = traced_task.delay()
    trace_id = request_span.get_span_context().trace_id

    assert result.get(timeout=20) == format(trace_id, "032x")
    found = spans_of_trace(spans, trace_id, "run/tests.traced_task")
    run = next(span for span in found if span.name == "run/tests.traced_task")
    assert run.kind == SpanKind.CONSUMER
    assert run.parent is not None
    assert run.parent.span_id != request_span.get_span_context().span_id  # the publish span is between
