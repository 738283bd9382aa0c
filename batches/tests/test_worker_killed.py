"""A worker SIGKILLed mid-batch: the task is delivered again to another worker, which
resumes at the first pending line; finished lines are not called again and the
ledger holds one row per line."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from typing import Any

import httpx
from django.core.files.base import ContentFile
from django_tenants.utils import tenant_context

from agents.tests.test_worker_killed import database_url_of_this_run, wait_for, worker_process
from batches import services
from batches.models import Batch, BatchStatus, LineStatus
from billing.models import UsageEvent
from ingestion.services import store_file
from testing.database import committed
from testing.tenants import TenantFixture
from testing.usage import drain_usage_events

LINES = 200
CONCURRENCY = 2
MODEL = "sim-large"  # no other test of this module calls it: its upstream count is this batch's


def line(n: int) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Line {n}."}], "max_tokens": 8}
    row = {"custom_id": f"line-{n}", "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(row).encode() + b"\n"


def create(tenant: TenantFixture) -> str:
    def write() -> str:
        with tenant_context(tenant.tenant):
            key_id = tenant.provisioned.issued_key.api_key.pk
            stored = store_file(
                ContentFile(b"".join(line(n) for n in range(LINES))),
                filename="killed.jsonl",
                purpose="batch",
                content_type="",
                api_key_id=key_id,
            )
            return services.create_batch(
                input_file_id=stored.id, endpoint="/v1/chat/completions", metadata=None, api_key_id=key_id
            ).pk

    return committed(write)


def read(tenant: TenantFixture, batch_id: str) -> Batch:
    def load() -> Batch:
        with tenant_context(tenant.tenant):
            return Batch.objects.get(pk=batch_id)

    return committed(load)


def finished_lines(tenant: TenantFixture, batch_id: str) -> dict[str, datetime | None]:
    def load() -> dict[str, datetime | None]:
        with tenant_context(tenant.tenant):
            lines = Batch.objects.get(pk=batch_id).lines.exclude(status=LineStatus.PENDING)
            return dict(lines.values_list("custom_id", "finished_at"))

    return committed(load)


def upstream_calls(simulator_url: str) -> int:
    stats: dict[str, Any] = httpx.get(simulator_url.removesuffix("/v1") + "/_sim/stats", timeout=5).json()
    return int(stats["requests_by_model"].get(MODEL, 0))


def test_a_worker_killed_mid_batch_resumes_without_calling_finished_lines_again(
    serving_tenant: TenantFixture, registry: str, simulator_url: str, settings: Any
) -> None:
    queue = f"test-batches-killed-{os.getpid()}"
    settings.BATCHES_QUEUE = queue
    environ = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_run(),
        "USAGE_STREAM": settings.USAGE_STREAM,
        "BATCH_CONCURRENCY": str(CONCURRENCY),
    }
    calls_before = upstream_calls(simulator_url)
    with worker_process(queue, f"first-batch-{os.getpid()}@test", environ) as first:
        batch_id = create(serving_tenant)
        wait_for(lambda: read(serving_tenant, batch_id).completed >= 20, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    interrupted = read(serving_tenant, batch_id)
    done_before = finished_lines(serving_tenant, batch_id)
    assert interrupted.status == BatchStatus.IN_PROGRESS
    assert 20 <= interrupted.completed < LINES

    with worker_process(queue, f"second-batch-{os.getpid()}@test", environ):
        wait_for(lambda: read(serving_tenant, batch_id).status == BatchStatus.COMPLETED, timeout=90)

    batch = read(serving_tenant, batch_id)
    assert (batch.total, batch.completed, batch.failed, batch.attempts) == (LINES, LINES, 0, 2)
    done_after = finished_lines(serving_tenant, batch_id)
    assert {custom_id: done_after[custom_id] for custom_id in done_before} == done_before
    # Each line reached the provider once, but for the lines in flight when the worker died.
    assert LINES <= upstream_calls(simulator_url) - calls_before <= LINES + CONCURRENCY
    committed(lambda: drain_usage_events(settings.USAGE_STREAM))
    rows = committed(lambda: UsageEvent.objects.filter(request_id__startswith=f"req_{batch_id}_").count())
    assert rows == LINES
