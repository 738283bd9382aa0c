"""The sweeper: no batch stays active forever.

A worker that dies mid-batch has its task redelivered by the broker; this
catches what that misses (a lost message, a queue nobody consumed). Every
tenant's active batches without a heartbeat for settings.BATCH_STALE_SECONDS
are queued again; the run expires those past their window. A batch still held
by a live worker is not run twice (the runner's advisory lock), so queuing one
again too early is harmless.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from batches.models import ACTIVE_STATUSES, Batch
from batches.services import enqueue_batch
from tenants.sweeping import heartbeat_stopped, sweep_every_schema


def sweep_stalled_batches(now: datetime | None = None) -> int:
    """Queue again the stalled batches of every tenant; how many."""
    return sweep_every_schema(sweep_schema, now)


def sweep_schema(moment: datetime) -> int:
    stalled = heartbeat_stopped(ACTIVE_STATUSES, settings.BATCH_STALE_SECONDS, moment)
    batch_ids = list(Batch.objects.filter(stalled).values_list("pk", flat=True))
    for batch_id in batch_ids:
        # Touched first, so the next sweep waits a whole period for this delivery.
        Batch.objects.filter(pk=batch_id).update(heartbeat_at=moment)
        enqueue_batch(batch_id)
    return len(batch_ids)
