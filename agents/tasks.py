"""Agent runs on the `runs` queue, in the tenant's schema (tenant-schemas-celery).

The task takes the run's id and is safe to deliver twice or to redeliver after
its worker died (acks_late, reject_on_worker_lost): agents/engine.py resumes
from the run's events and never repeats a completed step. `sweep` spans every
tenant and enters each schema itself.
"""

from __future__ import annotations

from agents import engine, sweeper
from aiaas.celery import app, tenant_task


@tenant_task(name="agents.execute_run", queue="runs", acks_late=True, ignore_result=True)
def execute_run(run_id: int) -> None:
    engine.execute_run(run_id)


# celery ships no types (pyproject.toml), so its decorators are untyped.
@app.task(name="agents.sweep", queue="default", ignore_result=True)  # type: ignore[untyped-decorator]
def sweep() -> int:
    """Resume every tenant's runs whose executor's heartbeat stopped. Idempotent."""
    return sweeper.sweep_stalled_runs()
