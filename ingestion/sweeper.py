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

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import ProgrammingError
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from ingestion import pipeline
from ingestion.models import Document, DocumentStatus
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def sweep_stalled_documents(now: datetime | None = None) -> int:
    """Queue again or fail the stalled documents of every tenant; how many were touched.
    A tenant whose schema cannot be read is logged and skipped."""
    moment = now or timezone.now()
    with schema_context(get_public_schema_name()):
        schemas = list(
            Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True)
        )
    touched = 0
    for schema in schemas:
        try:
            with schema_context(schema):
                touched += sweep_schema(moment)
        except ProgrammingError:
            logger.exception("ingestion: cannot sweep the schema %s", schema)
    return touched


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
