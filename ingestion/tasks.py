"""Ingestion on the `ingestion` queue, in the tenant's schema (tenant-schemas-celery)."""

from __future__ import annotations

from aiaas.celery import tenant_task
from aiaas.queues import INGESTION_QUEUE


@tenant_task(name="ingestion.ingest_document", queue=INGESTION_QUEUE, acks_late=True, ignore_result=True)
def ingest_document(document_id: str) -> None:
    raise NotImplementedError
