"""Platform work and tenant work on separate queues and separate worker processes,
with time and memory limits: the usage flush, meter pushes and webhooks never wait
behind a tenant's runs, and a template bomb fails its own run only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
import yaml
from django.conf import settings
from django_tenants.utils import tenant_context

from agents.models import Run, RunStatus
from agents.services import time_limits
from agents.tests.test_bounded_work import ECHO_SPEC
from agents.tests.test_celery_runs import finished, start
from agents.tests.test_worker_killed import database_url_of_this_run
from aiaas import launcher, queues
from aiaas.celery import app
from billing import tasks as billing_tasks
from billing.models import UsageEvent
from billing.usage import UsageRecord, record_usage
from testing.database import committed
from testing.tenants import TenantFixture


def worker_queues() -> dict[str, set[str]]:
    """The queues each worker child of `make run` consumes (its `--queues`)."""
    commands = launcher.child_commands(sys.executable)
    return {
        name: set(command[command.index("--queues") + 1].split(","))
        for name, command in commands.items()
        if "worker" in command
    }


def test_the_billing_worker_and_the_tenant_worker_consume_disjoint_queues() -> None:
    consumed = worker_queues()

    assert consumed == {
        "worker": {"default", settings.AGENT_RUNS_QUEUE, "ingestion", "evals", "batches"},
        "billing-worker": {"billing"},
    }
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert declared == consumed["worker"] | consumed["billing-worker"]


def test_compose_runs_platform_work_on_a_worker_of_its_own() -> None:
    with open(settings.BASE_DIR / "docker" / "compose.yaml") as file:
        services = yaml.safe_load(file)["services"]
    platform = " ".join(services["worker-platform"]["command"])

    assert '--queues "$$(python -m aiaas.queues platform)"' in platform
    assert "--hostname platform@%h" in platform
    assert queues.queue_list("tenant", {}) == "default,runs,ingestion,evals,batches"
    assert queues.queue_list("platform", {}) == "billing"
    assert queues.queue_list("agents", {"AGENT_RUNS_QUEUE": "runs-eu"}) == "runs-eu"


def queue_of(entry: dict[str, Any]) -> str:
    app.loader.import_default_modules()  # every app's tasks.py, as a worker does
    task = app.tasks[entry["task"]]
    return str(entry.get("options", {}).get("queue") or task.queue or settings.CELERY_TASK_DEFAULT_QUEUE)


def test_every_periodic_task_routes_to_a_queue_a_worker_consumes_and_billing_to_the_billing_worker() -> None:
    consumed = worker_queues()
    routed = {name: queue_of(entry) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}

    assert routed, "beat schedules nothing"
    for name, queue in routed.items():
        assert queue in consumed["worker"] | consumed["billing-worker"], name
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    billing = {name for name, entry in schedule.items() if entry["task"].startswith("billing.")}
    assert billing == {
        "flush-usage-events",
        "push-meter-events",
        "retry-stripe-events",
        "maintain-ledger-partitions",
    }
    assert {routed[name] for name in billing} == {"billing"}
    assert routed["apply-analytics-rollups"] == "billing"  # the ledger's read model, beside its flush
    assert app.tasks["billing.process_stripe_event"].queue == "billing"  # webhooks


def test_every_task_is_time_limited_and_worker_children_are_memory_limited() -> None:
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.worker_max_memory_per_child == settings.CELERY_WORKER_MAX_MEMORY_PER_CHILD > 0


def test_an_agent_runs_time_limits_follow_its_budget() -> None:
    assert time_limits({"steps": []}) == (660.0, 690.0)
    assert time_limits({"steps": [], "budget": {"max_seconds": 86_400}}) == (86_460.0, 86_490.0)


@contextmanager
def worker(name: str, queue: str, environ: dict[str, str]) -> Iterator[None]:
    """`make run`'s worker command (prefork, so time limits apply) on a queue of this test's."""
    command = launcher.worker_command(sys.executable, name, [queue], "1")
    command[command.index("--loglevel") + 1] = "WARNING"
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=environ)  # noqa: S603 - our command
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def queue_usage(tenant: TenantFixture, stream: str, count: int) -> list[str]:
    records = [
        UsageRecord(
            request_id=f"req_{uuid.uuid4().hex}",
            tenant_id=tenant.tenant.pk,
            api_key_id=tenant.provisioned.issued_key.api_key.pk,
            model="sim-small",
            tier=1,
            prompt_tokens=10,
            completion_tokens=20,
            cost_usd=Decimal("0.00003000"),
            latency_ms=100,
            ttft_ms=50,
            status=200,
            error_type="",
            estimated=False,
            created_at=datetime(2001, 1, 1, tzinfo=UTC),
        )
        for _ in range(count)
    ]

    async def produce() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            await asyncio.gather(*(record_usage(client, record, stream) for record in records))
        finally:
            await client.aclose()

    asyncio.run(produce())
    return [record.request_id for record in records]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out")
        time.sleep(0.1)
    return time.monotonic() - started


BOMBS = 6
# Loops without output: only the time limit stops them.
SPINNING_SPEC: dict[str, Any] = {
    "name": "spin",
    "steps": [
        {
            "id": "explode",
            "kind": "validate",
            "value": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "schema": {"type": "string"},
        }
    ],
}


def finished_count(tenant: TenantFixture, run_ids: list[int]) -> int:
    def read() -> int:
        with tenant_context(tenant.tenant):
            return Run.objects.filter(pk__in=run_ids, finished_at__isnull=False).count()

    return int(committed(read))


def test_template_bombs_fail_their_runs_while_the_usage_flush_completes_on_its_own_worker(
    serving_tenant: TenantFixture, settings: Any
) -> None:
    runs_queue, billing_queue = f"test-runs-{os.getpid()}", f"test-billing-{os.getpid()}"
    settings.AGENT_RUNS_QUEUE = runs_queue
    stream = f"usage:test-workers:{uuid.uuid4().hex}"
    # Bombs that spin until the template time limit (2 s each): the tenant worker
    # (one child) is busy for about BOMBS * 2 s while the flush is due.
    environ = {**os.environ, "DATABASE_URL": database_url_of_this_run()}
    environ["AGENT_TEMPLATE_MAX_ITERATIONS"] = str(10**9)
    with worker("tenant-test", runs_queue, environ), worker("billing-test", billing_queue, environ):
        bombs = [start(serving_tenant, SPINNING_SPEC, {}) for _ in range(BOMBS)]
        after = start(serving_tenant, ECHO_SPEC, {"text": "goes on"})
        request_ids = queue_usage(serving_tenant, stream, 20)
        billing_tasks.flush_usage_events.apply_async(kwargs={"stream": stream}, queue=billing_queue)

        def flushed() -> bool:
            rows = committed(lambda: UsageEvent.objects.filter(request_id__in=request_ids).count())
            return bool(rows == len(request_ids))

        flush_seconds = wait_for(flushed)
        done = finished_count(serving_tenant, bombs)
        print(f"\nflushed after {flush_seconds:.1f}s; spinning runs done then: {done}/{BOMBS}")
        runs = [finished(serving_tenant, run_id, timeout=120) for run_id in [*bombs, after]]

    assert done < BOMBS  # the flush did not wait for the tenant's runs
    assert [run.status for run in runs] == [RunStatus.FAILED] * BOMBS + [RunStatus.SUCCEEDED]
    assert {run.error for run in runs[:BOMBS]} == {"explode: the template took longer than 2s"}
    assert runs[-1].output == "goes on"
