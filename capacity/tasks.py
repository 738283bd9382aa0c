"""Capacity's Celery tasks, on the platform queue (tenant work cannot starve them).

`evaluate` is sent by beat every DEGRADE_EVALUATE_SECONDS; a Redis lock that
outlives most of a period makes it run once per period however many beat
schedulers or deliveries there are. `resume_paused_work` queues again the work a
level paused, once a level that does not pause it is set.
"""

from __future__ import annotations

import uuid

from django.conf import settings

from aiaas.celery import app
from aiaas.queues import BILLING_QUEUE
from aiaas.redis_clients import sync_client
from aiaas.redis_keys import redis_key
from capacity import evaluator
from capacity.levels import PausedWork
from evals.sweeper import resume_queued_experiments
from ingestion.sweeper import resume_queued_documents

EVALUATOR_LOCK = redis_key("capacity", "evaluator", "lock")


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="capacity.evaluate", queue=BILLING_QUEUE, ignore_result=True)  # type: ignore[untyped-decorator]
def evaluate() -> None:
    hold_ms = int(settings.DEGRADE_EVALUATE_SECONDS * 800)
    if sync_client("default").set(EVALUATOR_LOCK, uuid.uuid4().hex, nx=True, px=hold_ms):
        evaluator.evaluate()


@app.task(name="capacity.resume_paused_work", queue=BILLING_QUEUE, ignore_result=True)  # type: ignore[untyped-decorator]
def resume_paused_work(kinds: list[str]) -> int:
    """Queue the work of `kinds` that waited; how many items were queued."""
    resumers = {PausedWork.INGESTION: resume_queued_documents, PausedWork.EVALS: resume_queued_experiments}
    return sum(resumers[PausedWork(kind)]() for kind in kinds)
