"""Ingestion on real Celery workers: end to end with progress on the stream, and a
worker SIGKILLed mid-document whose task another worker resumes without
storing a chunk twice."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from django_tenants.utils import tenant_context

from agents.tests.test_worker_killed import database_url_of_this_run, wait_for, worker_process
from ingestion import services
from ingestion.models import Chunk, Document, DocumentStatus
from ingestion.tests.factories import key_id, make_collection
from realtime import streams
from testing.database import committed
from testing.tenants import TenantFixture

LONG_TEXT = "\n\n".join(
    f"Paragraph {n} explains how part {n} of the machine is serviced, cleaned, checked and put back "
    f"together by a technician, with the tools and the time that step {n} needs."
    for n in range(120)
)


def add(tenant: TenantFixture, text: str, **options: Any) -> str:
    def write() -> str:
        with tenant_context(tenant.tenant):
            collection = make_collection(tenant, **options)
            return services.add_text(collection, text=text, api_key_id=key_id(tenant))[0].pk

    return committed(write)


def read(tenant: TenantFixture, document_id: str) -> Document:
    def load() -> Document:
        with tenant_context(tenant.tenant):
            return Document.objects.get(pk=document_id)

    return committed(load)


def finished(tenant: TenantFixture, document_id: str, timeout: float = 60.0) -> Document:
    deadline = time.monotonic() + timeout
    document = read(tenant, document_id)
    while (
        document.status not in (DocumentStatus.READY, DocumentStatus.FAILED) and time.monotonic() < deadline
    ):
        time.sleep(0.1)
        document = read(tenant, document_id)
    return document


def test_a_document_is_ingested_on_the_worker_with_live_progress(
    ingestion_worker: str, serving_tenant: TenantFixture
) -> None:
    document_id = add(serving_tenant, "# Manual\n\nService the pump yearly.\n\n## Safety\n\nWear gloves.")

    document = finished(serving_tenant, document_id)

    assert document.status == DocumentStatus.READY, document.error
    events = [e.event for e in streams.read(serving_tenant.tenant.schema_name, document.stream_id, count=100)]
    assert [event["status"] for event in events[:2]] == ["queued", "processing"]
    assert events[-1] == {
        "type": "ingestion.ready",
        "document_id": document_id,
        "status": "ready",
        "chunks_done": 2,
        "chunks_total": 2,
    }


def test_a_worker_killed_mid_document_is_replaced_and_no_chunk_is_stored_twice(
    serving_tenant: TenantFixture, registry: str, settings: Any
) -> None:
    queue = f"test-ingestion-killed-{os.getpid()}"
    settings.INGESTION_QUEUE = queue
    environ = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_run(),
        "USAGE_STREAM": settings.USAGE_STREAM,
        "INGESTION_EMBEDDING_BATCH": "1",
    }
    with worker_process(queue, f"first-ingest-{os.getpid()}@test", environ) as first:
        document_id = add(serving_tenant, LONG_TEXT, chunk_tokens=50, chunk_overlap=0)
        wait_for(lambda: read(serving_tenant, document_id).chunks_done >= 10, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    interrupted = read(serving_tenant, document_id)
    assert interrupted.status == DocumentStatus.PROCESSING
    assert 10 <= interrupted.chunks_done < interrupted.chunks_total

    with worker_process(queue, f"second-ingest-{os.getpid()}@test", environ):
        document = finished(serving_tenant, document_id, timeout=90)

    assert document.status == DocumentStatus.READY, document.error
    assert (document.attempts, document.generation) == (2, 1)

    def positions() -> list[tuple[int, int]]:
        with tenant_context(serving_tenant.tenant):
            return list(Chunk.objects.filter(document_id=document_id).values_list("generation", "position"))

    stored = committed(positions)
    assert sorted(stored) == [(1, position) for position in range(document.chunks_total)]
    assert document.chunk_count == document.chunks_total == len(stored) > 10
