"""Agent runs on the `runs` queue, in the tenant's schema (tenant-schemas-celery).

The task takes the run's id and is safe to deliver twice or to redeliver after
its worker died (acks_late, reject_on_worker_lost): agents/engine.py resumes
from the run's events and never repeats a completed step.
"""

from __future__ import annotations

from agents import engine
from aiaas.celery import tenant_task


@tenant_task(name="agents.execute_run", queue="runs", acks_late=True, ignore_result=True)
def execute_run(run_id: int) -> None:
    engine.execute_run(run_id)
