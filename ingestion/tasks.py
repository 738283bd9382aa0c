"""Ingestion's Celery tasks.

`ingest_document` runs on the `ingestion` queue in the tenant's schema
(tenant-schemas-celery). It takes the document's id and is safe to deliver
twice or to redeliver after its worker died (acks_late, reject_on_worker_lost):
ingestion/pipeline.py resumes and never stores a chunk twice. `sweep` spans
every tenant and enters each schema itself.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from aiaas.celery import app, tenant_task
from aiaas.queues import INGESTION_QUEUE
from capacity.levels import PausedWork
from capacity.state import is_paused
from ingestion import pipeline, sweeper


@tenant_task(
    name="ingestion.ingest_document",
    queue=INGESTION_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.INGESTION_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.INGESTION_TIME_LIMIT_SECONDS,
)
def ingest_document(document_id: str) -> None:
    if is_paused(PausedWork.INGESTION):  # sent before the level paused it: resumed with the rest
        return
    try:
        pipeline.ingest(document_id)
    except SoftTimeLimitExceeded:
        pipeline.fail(
            document_id, f"ingestion took longer than {settings.INGESTION_SOFT_TIME_LIMIT_SECONDS} seconds"
        )


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="ingestion.sweep", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def sweep() -> int:
    """Queue again, or fail, every tenant's stalled documents. Idempotent."""
    return sweeper.sweep_stalled_documents()
