"""Batches' Celery tasks.

`run_batch` runs on the `batches` queue in the tenant's schema
(tenant-schemas-celery). It takes the batch's id and is safe to deliver twice
or to redeliver after its worker died (acks_late, reject_on_worker_lost):
batches/runner.py resumes at the first pending line. A run that reaches its
soft time limit queues its continuation. `sweep` spans every tenant.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from aiaas.celery import app, tenant_task
from aiaas.queues import BATCHES_QUEUE
from batches import runner, sweeper
from batches.services import enqueue_batch


@tenant_task(
    name="batches.run_batch",
    queue=BATCHES_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.BATCH_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.BATCH_TIME_LIMIT_SECONDS,
)
def run_batch(batch_id: str) -> None:
    try:
        runner.run(batch_id)
    except SoftTimeLimitExceeded:
        enqueue_batch(batch_id)


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="batches.sweep", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def sweep() -> int:
    """Queue again every tenant's active batches whose worker went silent. Idempotent."""
    return sweeper.sweep_stalled_batches()
