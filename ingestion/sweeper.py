"""The sweeper: no document stays `queued` or `processing` forever.

A worker that dies mid-document has its task redelivered by the broker; this
catches what that misses (a lost message, a worker that hangs, a queue nobody
consumed). Every tenant's documents `processing` without a heartbeat for
settings.INGESTION_STALE_SECONDS, or `queued` untouched that long, are queued
again; once they have been tried INGESTION_MAX_ATTEMPTS times they fail. A
document still held by a live worker is not ingested twice (the pipeline's
advisory lock), so queuing one again too early is harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from ingestion import pipeline
from ingestion.models import Document, DocumentStatus
from tenants.sweeping import sweep_every_schema


def sweep_stalled_documents(now: datetime | None = None) -> int:
    """Queue again or fail the stalled documents of every tenant; how many were touched."""
    return sweep_every_schema(sweep_schema, now)


def stalled(moment: datetime) -> Q:
    cutoff = moment - timedelta(seconds=settings.INGESTION_STALE_SECONDS)
    return (
        Q(status=DocumentStatus.PROCESSING, heartbeat_at__lt=cutoff)
        | Q(status=DocumentStatus.PROCESSING, heartbeat_at__isnull=True, updated_at__lt=cutoff)
        | Q(status=DocumentStatus.QUEUED, updated_at__lt=cutoff)
    )


def sweep_schema(moment: datetime) -> int:
    from ingestion.services import enqueue_ingestion

    documents = list(Document.objects.filter(stalled(moment)).values_list("pk", "status", "attempts"))
    for document_id, status, attempts in documents:
        if attempts >= settings.INGESTION_MAX_ATTEMPTS:
            pipeline.fail(document_id, f"ingestion did not finish after {attempts} attempts")
            continue
        # Touched first, so the next sweep waits a whole period for this delivery.
        requeued = Document.objects.filter(pk=document_id, status=status).update(
            updated_at=moment, heartbeat_at=moment
        )
        if requeued:
            enqueue_ingestion(document_id)
    return len(documents)


def resume_queued_documents() -> int:
    """Send every tenant's `queued` documents to the workers (after a degrade level
    paused ingestion); a document sent twice is ingested once (the pipeline's lock)."""
    return sweep_every_schema(resume_schema)


def resume_schema(moment: datetime) -> int:
    from ingestion.services import enqueue_ingestion

    document_ids = list(Document.objects.filter(status=DocumentStatus.QUEUED).values_list("pk", flat=True))
    for document_id in document_ids:
        enqueue_ingestion(document_id)
    return len(document_ids)
