"""The sweeper: no experiment stays active forever.

A worker that dies mid-experiment has its task redelivered by the broker; this
catches what that misses (a lost message, a queue nobody consumed). Every
tenant's active experiments without a heartbeat for settings.EVALS_STALE_SECONDS
are queued again; the runner fails one past settings.EVALS_MAX_ATTEMPTS. One
still held by a live runner is not run twice (the runner's advisory lock), so
queuing it again too early is harmless.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from evals.models import ACTIVE_EXPERIMENT_STATUSES, Experiment, ExperimentStatus
from evals.services import enqueue_experiment
from tenants.sweeping import heartbeat_stopped, sweep_every_schema


def sweep_stalled_experiments(now: datetime | None = None) -> int:
    """Queue again the stalled experiments of every tenant; how many."""
    return sweep_every_schema(sweep_schema, now)


def sweep_schema(moment: datetime) -> int:
    stalled = heartbeat_stopped(ACTIVE_EXPERIMENT_STATUSES, settings.EVALS_STALE_SECONDS, moment)
    experiment_ids = list(Experiment.objects.filter(stalled).values_list("pk", flat=True))
    for experiment_id in experiment_ids:
        # Touched first, so the next sweep waits a whole period for this delivery.
        Experiment.objects.filter(pk=experiment_id).update(heartbeat_at=moment)
        enqueue_experiment(experiment_id)
    return len(experiment_ids)


def resume_queued_experiments() -> int:
    """Send every tenant's `queued` experiments to the workers (after a degrade level
    paused evals); one sent twice runs once (the runner's lock)."""
    return sweep_every_schema(resume_schema)


def resume_schema(moment: datetime) -> int:
    experiment_ids = list(
        Experiment.objects.filter(status=ExperimentStatus.QUEUED).values_list("pk", flat=True)
    )
    for experiment_id in experiment_ids:
        enqueue_experiment(experiment_id)
    return len(experiment_ids)
