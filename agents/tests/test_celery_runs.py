"""Runs on a real Celery worker (the runs queue) in the tenant's schema: end to end,
and a duplicate delivery of the task changes nothing."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django_tenants.utils import tenant_context

from agents import services
from agents.models import Run, RunStatus
from agents.tasks import execute_run
from agents.tests.test_execution import SAGA, TRIAGE, output_of
from realtime import streams
from testing.agents import Ledger
from testing.database import committed
from testing.tenants import TenantFixture


def start(tenant: TenantFixture, spec: dict[str, Any], run_input: object) -> int:
    """Create the agent and start a run, committed, so the worker sees it (and gets it on commit)."""

    def write() -> int:
        with tenant_context(tenant.tenant):
            agent = services.create_agent({**spec, "name": f"{spec['name']}-{uuid.uuid4().hex[:8]}"})
            return services.start_run(agent, run_input, tenant.provisioned.issued_key.api_key).pk

    return committed(write)


def finished(tenant: TenantFixture, run_id: int, timeout: float = 30.0) -> Run:
    def read() -> Run:
        with tenant_context(tenant.tenant):
            return Run.objects.get(pk=run_id)

    deadline = time.monotonic() + timeout
    run = committed(read)
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(0.1)
        run = committed(read)
    return run


def event_count(tenant: TenantFixture, run_id: int) -> int:
    def read() -> int:
        with tenant_context(tenant.tenant):
            return Run.objects.get(pk=run_id).events.count()

    return committed(read)


def test_a_multi_step_agent_runs_end_to_end_on_the_worker(
    runs_worker: str, serving_tenant: TenantFixture, simulator: str
) -> None:
    run_id = start(serving_tenant, TRIAGE, {"text": "printer on fire", "items": ["a", "b", "c"]})

    run = finished(serving_tenant, run_id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(output_of(run)["tags"]) == 3
    assert run.steps_executed == 8


def test_run_events_stream_live_to_the_tenants_stream_only(
    runs_worker: str, serving_tenant: TenantFixture, other_tenant: TenantFixture, simulator: str
) -> None:
    run_id = start(serving_tenant, TRIAGE, {"text": "printer on fire", "items": ["a"]})
    run = finished(serving_tenant, run_id)

    def recorded() -> list[tuple[int, str]]:
        with tenant_context(serving_tenant.tenant):
            return list(Run.objects.get(pk=run_id).events.order_by("seq").values_list("seq", "type"))

    streamed = streams.read(serving_tenant.tenant.schema_name, run.stream_id, count=1000)
    assert [(e.event["seq"], e.event["type"]) for e in streamed] == committed(recorded)
    assert [e.final for e in streamed] == [False] * (len(streamed) - 1) + [True]
    assert streams.read(other_tenant.tenant.schema_name, run.stream_id) == []


def test_duplicate_delivery_of_a_run_changes_nothing(
    runs_worker: str, serving_tenant: TenantFixture, simulator: str, tools: Ledger
) -> None:
    run_id = start(serving_tenant, SAGA, {})
    with tenant_context(serving_tenant.tenant):
        execute_run.apply_async(args=[run_id], queue=runs_worker)
        execute_run.apply_async(args=[run_id], queue=runs_worker)

    run = finished(serving_tenant, run_id)
    events_after_first = event_count(serving_tenant, run_id)
    with tenant_context(serving_tenant.tenant):
        execute_run.apply_async(args=[run_id], queue=runs_worker, ignore_result=False).get(timeout=20)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert dict(tools.effects) == {"hotel": 1, "flight": 1, "car": 1}
    assert event_count(serving_tenant, run_id) == events_after_first
