"""Runs longer than the broker's visibility timeout: real worker processes on the
real Redis broker, with a visibility timeout of 2 s (production: 15 min).

Past it, the broker hands the unacknowledged task to a second worker, which
finds the run's lock held and acknowledges the duplicate as a no-op; the first
worker then dies and no delivery is left. The sweeper resumes the run from its
heartbeat; it leaves a run whose executor is alive alone.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.db import connection
from django_tenants.utils import tenant_context

from agents import locks
from agents.models import Run, RunStatus
from agents.sweeper import sweep_schema, sweep_stalled_runs
from agents.tests.test_celery_runs import finished, start
from agents.tests.test_worker_killed import call_requested, wait_for, worker_environment, worker_process
from testing.agents import Ledger
from testing.database import committed
from testing.tenants import TenantFixture

HEARTBEAT_SECONDS = 0.2
STALE_SECONDS = 1.0
DUPLICATE_NO_OP = b"is executing elsewhere; this delivery does nothing"
READY = b"@test ready."
RECEIVED = b"agents.execute_run["
SESSION_ENDED = b"this executor's session was ended; it stops here"


def spec(slow_steps: int) -> dict[str, Any]:
    """A hotel, `slow_steps` calls of SLOW_CALL_SECONDS each, and a car."""
    resources = ["hotel", *(f"slow-{number}" for number in range(1, slow_steps + 1)), "car"]
    return {
        "name": "long",
        "steps": [
            {
                "id": resource.replace("-", "_"),
                "kind": "tool",
                "tool": "reserve",
                "input": {"resource": resource},
            }
            for resource in resources
        ],
    }


def effects(slow_steps: int) -> dict[str, int]:
    return {"hotel": 1, **{f"slow-{number}": 1 for number in range(1, slow_steps + 1)}, "car": 1}


def configure(settings: Any, tools: Ledger, queue: str) -> dict[str, str]:
    """This test's runs queue, a short grace here, a short heartbeat in the workers."""
    settings.AGENT_RUNS_QUEUE = queue
    settings.AGENT_RUN_STALE_SECONDS = STALE_SECONDS
    tools.faults.update({f"slow-{number}": "slow" for number in range(1, 4)})
    return {**worker_environment(settings), "AGENT_RUN_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}


def read_run(tenant: TenantFixture, run_id: int) -> Run:
    def read() -> Run:
        with tenant_context(tenant.tenant):
            return Run.objects.get(pk=run_id)

    return committed(read)


def event_types(tenant: TenantFixture, run_id: int) -> list[str]:
    def read() -> list[str]:
        with tenant_context(tenant.tenant):
            return list(Run.objects.get(pk=run_id).events.order_by("seq").values_list("type", flat=True))

    return committed(read)


def lock_holders(tenant: TenantFixture, run_id: int) -> list[int]:
    """The sessions holding the run's lock (pg_locks: a bigint key as its two halves)."""
    unsigned = locks.lock_key(tenant.tenant.schema_name, run_id) & 0xFFFF_FFFF_FFFF_FFFF

    def read() -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND classid = %s::bigint::oid AND objid = %s::bigint::oid",
                [unsigned >> 32, unsigned & 0xFFFF_FFFF],
            )
            return [int(pid) for (pid,) in cursor.fetchall()]

    return committed(read)


def heartbeat_of(tenant: TenantFixture, run_id: int) -> datetime | None:
    return read_run(tenant, run_id).heartbeat_at


def test_the_sweeper_is_on_the_beat_schedule() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["sweep-agent-runs"]
    assert entry["task"] == "agents.sweep"
    assert entry["schedule"] < django_settings.AGENT_RUN_STALE_SECONDS


def two_ready_workers(
    stack: ExitStack, queue: str, environ: dict[str, str], tmp_path: Path
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Two worker processes on `queue`, each logging to a file, once both are ready
    (closed with `stack`): their logs and their processes, by name."""
    logs = {name: tmp_path / f"{name}.log" for name in ("one", "two")}
    files = {name: stack.enter_context(log.open("wb")) for name, log in logs.items()}
    workers = {
        name: stack.enter_context(worker_process(queue, f"{name}-{os.getpid()}@test", environ, file))
        for name, file in files.items()
    }
    wait_for(lambda: all(READY in log.read_bytes() for log in logs.values()), timeout=60)
    return logs, workers


def test_a_run_whose_worker_died_after_its_duplicate_was_acknowledged_is_resumed_by_the_sweeper(
    serving_tenant: TenantFixture, tools: Ledger, simulator: str, settings: Any, tmp_path: Path
) -> None:
    queue = f"test-swept-{os.getpid()}"
    environ = configure(settings, tools, queue)
    with ExitStack() as stack:
        logs, workers = two_ready_workers(stack, queue, environ, tmp_path)
        run_id = start(serving_tenant, spec(3), {})
        wait_for(lambda: any(RECEIVED in log.read_bytes() for log in logs.values()))
        executor, idle = sorted(logs, key=lambda name: RECEIVED not in logs[name].read_bytes())
        # Past the visibility timeout the broker hands the task to the idle worker, which acknowledges it.
        wait_for(lambda: DUPLICATE_NO_OP in logs[idle].read_bytes())
        workers[executor].send_signal(signal.SIGKILL)
        workers[executor].wait(timeout=10)

        time.sleep(3)  # a visibility timeout and more: no delivery of the run is left
        abandoned = read_run(serving_tenant, run_id)
        assert abandoned.status == RunStatus.RUNNING
        assert lock_holders(serving_tenant, run_id) == []  # the dead worker's session ended with it

        assert committed(sweep_stalled_runs) >= 1
        run = finished(serving_tenant, run_id, timeout=20)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert dict(tools.effects) == effects(3)
    assert tools.calls["hotel"] == 1
    recorded = event_types(serving_tenant, run_id)
    assert recorded.count("run.started") == 1
    assert recorded.count("run.resumed") == 1


def test_a_run_whose_heartbeat_is_fresh_is_left_alone(
    serving_tenant: TenantFixture, tools: Ledger, simulator: str, settings: Any
) -> None:
    queue = f"test-live-{os.getpid()}"
    environ = configure(settings, tools, queue)
    with worker_process(queue, f"live-{os.getpid()}@test", environ):
        run_id = start(serving_tenant, spec(3), {})
        wait_for(lambda: call_requested(serving_tenant, run_id, "slow_1"))
        holders = lock_holders(serving_tenant, run_id)
        first_beat = heartbeat_of(serving_tenant, run_id)
        deadline = time.monotonic() + 3 * STALE_SECONDS
        while time.monotonic() < deadline:  # longer than the grace, with a sweep every 0.1 s
            committed(sweep_stalled_runs)
            time.sleep(0.1)
        last_beat = heartbeat_of(serving_tenant, run_id)
        still_held_by = lock_holders(serving_tenant, run_id)
        run = finished(serving_tenant, run_id, timeout=20)

    assert len(holders) == 1
    assert still_held_by == holders  # its executor's session was not ended
    assert first_beat is not None
    assert last_beat is not None
    assert (last_beat - first_beat).total_seconds() >= 2 * STALE_SECONDS
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert event_types(serving_tenant, run_id).count("run.resumed") == 0
    assert dict(tools.effects) == effects(3)


def test_a_frozen_workers_session_is_ended_and_it_records_nothing_when_it_wakes(
    serving_tenant: TenantFixture, tools: Ledger, simulator: str, settings: Any, tmp_path: Path
) -> None:
    """A frozen worker (SIGSTOP; a paused VM, a partitioned host) keeps its session and
    the run's lock: the sweeper ends that session, the other worker resumes the run,
    and the frozen one, woken, stops before writing anything."""
    queue = f"test-frozen-{os.getpid()}"
    environ = configure(settings, tools, queue)
    with ExitStack() as stack:
        logs, workers = two_ready_workers(stack, queue, environ, tmp_path)
        run_id = start(serving_tenant, spec(1), {})
        wait_for(lambda: any(RECEIVED in log.read_bytes() for log in logs.values()))
        executor = next(name for name, log in logs.items() if RECEIVED in log.read_bytes())
        wait_for(lambda: call_requested(serving_tenant, run_id, "slow_1"))
        frozen_session = lock_holders(serving_tenant, run_id)
        workers[executor].send_signal(signal.SIGSTOP)
        try:
            time.sleep(STALE_SECONDS + 0.5)
            assert committed(sweep_stalled_runs) >= 1
            assert lock_holders(serving_tenant, run_id) != frozen_session
            run = finished(serving_tenant, run_id, timeout=30)
            recorded = event_types(serving_tenant, run_id)
        finally:
            workers[executor].send_signal(signal.SIGCONT)
        wait_for(lambda: SESSION_ENDED in logs[executor].read_bytes())

    assert len(frozen_session) == 1
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert recorded.count("run.resumed") == 1
    assert event_types(serving_tenant, run_id) == recorded  # the woken worker wrote nothing
    assert dict(tools.effects) == effects(1)


def test_a_queued_run_whose_delivery_was_lost_is_sent_again(
    serving_tenant: TenantFixture, tools: Ledger, simulator: str, settings: Any
) -> None:
    queue = f"test-lost-{os.getpid()}"
    environ = configure(settings, tools, queue)
    settings.AGENT_RUNS_QUEUE = f"{queue}-unread"  # its one delivery goes where no worker reads
    run_id = start(serving_tenant, spec(0), {})
    settings.AGENT_RUNS_QUEUE = queue
    created = read_run(serving_tenant, run_id).created_at

    def sweep_at(moment: datetime) -> int:
        with tenant_context(serving_tenant.tenant):
            return sweep_schema(moment)

    committed(lambda: sweep_at(created + timedelta(seconds=settings.AGENT_RUN_QUEUED_STALE_SECONDS - 1)))
    waiting_its_turn = read_run(serving_tenant, run_id)
    with worker_process(queue, f"lost-{os.getpid()}@test", environ):
        assert (
            committed(
                lambda: sweep_at(created + timedelta(seconds=settings.AGENT_RUN_QUEUED_STALE_SECONDS + 1))
            )
            >= 1
        )
        run = finished(serving_tenant, run_id, timeout=20)

    assert (waiting_its_turn.status, waiting_its_turn.heartbeat_at) == (RunStatus.QUEUED, None)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert dict(tools.effects) == effects(0)
