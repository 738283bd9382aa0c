"""Evals' Celery tasks.

`run_experiment` runs on the `evals` queue in the tenant's schema
(tenant-schemas-celery). It takes the experiment's id and is safe to deliver
twice or to redeliver after its worker died (acks_late, reject_on_worker_lost):
evals/runner.py calls only the cases without a result. A run that reaches its
soft time limit queues its continuation. `sweep` and `nightly_tick` span every tenant.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from aiaas.celery import app, tenant_task
from aiaas.queues import EVALS_QUEUE
from capacity.levels import PausedWork
from capacity.state import is_paused
from evals import nightly, runner, sweeper
from evals.services import enqueue_experiment


@tenant_task(
    name="evals.run_experiment",
    queue=EVALS_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=settings.EVALS_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.EVALS_TIME_LIMIT_SECONDS,
)
def run_experiment(experiment_id: str) -> None:
    if is_paused(PausedWork.EVALS):  # sent before the level paused it: resumed with the rest
        return
    try:
        runner.run(experiment_id)
    except SoftTimeLimitExceeded:
        enqueue_experiment(experiment_id)


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="evals.sweep", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def sweep() -> int:
    """Queue again every tenant's active experiments whose runner went silent. Idempotent."""
    return sweeper.sweep_stalled_experiments()


@app.task(name="evals.nightly", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def nightly_tick() -> None:
    """Start the due nightly runs and alert on the ended ones' regressions. Idempotent."""
    nightly.tick()
