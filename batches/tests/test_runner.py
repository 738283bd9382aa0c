"""The runner's ends other than `completed`, run in process (no worker) so each is
reached deterministically: a batch past its window `expired`, a cancel before or
between rounds `cancelled`; and the sweeper queuing a silent batch again."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from batches import runner
from batches.models import Batch, BatchEndpoint, BatchLine, BatchStatus, LineStatus
from batches.sweeper import sweep_schema
from batches.tasks import sweep
from ingestion.models import StoredFile
from ingestion.runtime import close_runtime
from testing.database import committed
from testing.tenants import TenantFixture

LINES = 3
T = TypeVar("T")


def body(n: int) -> dict[str, Any]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": f"Line {n}."}], "max_tokens": 8}


def make_lines(tenant: TenantFixture, **fields: Any) -> str:
    """A committed chat batch of LINES pending lines, `validating` unless `fields` say otherwise."""

    def write() -> str:
        with tenant_context(tenant.tenant):
            batch = Batch.objects.create(
                **{
                    "endpoint": BatchEndpoint.CHAT_COMPLETIONS,
                    "input_file_id": "file-none",
                    "api_key_id": tenant.provisioned.issued_key.api_key.pk,
                    "expires_at": timezone.now() + timedelta(hours=24),
                    "total": LINES,
                    **fields,
                }
            )
            BatchLine.objects.bulk_create(
                [BatchLine(batch=batch, line=n, custom_id=f"c{n}", body=body(n)) for n in range(1, LINES + 1)]
            )
            return batch.pk

    return committed(write)


def in_tenant(tenant: TenantFixture, work: Callable[[], T]) -> T:
    """`work` in the tenant's schema on a connection of its own (committed), as a worker runs."""

    def run() -> T:
        with tenant_context(tenant.tenant):
            try:
                return work()
            finally:
                close_runtime()

    return committed(run)


def run_batch(tenant: TenantFixture, batch_id: str) -> Batch:
    def run() -> Batch:
        runner.run(batch_id)
        return Batch.objects.get(pk=batch_id)

    return in_tenant(tenant, run)


def lines_by_status(tenant: TenantFixture, batch_id: str) -> dict[str, list[str]]:
    def load() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for line in BatchLine.objects.filter(batch_id=batch_id).order_by("line"):
            found.setdefault(line.status, []).append(line.custom_id)
        return found

    return in_tenant(tenant, load)


def file_lines(tenant: TenantFixture, file_id: str) -> list[dict[str, Any]]:
    def load() -> list[dict[str, Any]]:
        with StoredFile.objects.get(pk=file_id).content.open("rb") as file:
            return [json.loads(row) for row in file.read().splitlines()]

    assert file_id
    return in_tenant(tenant, load)


def test_a_batch_past_its_window_expires_failing_its_pending_lines(
    serving_tenant: TenantFixture, registry: str
) -> None:
    batch_id = make_lines(
        serving_tenant, status=BatchStatus.IN_PROGRESS, expires_at=timezone.now() - timedelta(seconds=1)
    )
    answered = {"status_code": 200, "request_id": "req_done", "body": {"object": "chat.completion"}}
    in_tenant(
        serving_tenant,
        lambda: BatchLine.objects.filter(batch_id=batch_id, line=1).update(
            status=LineStatus.SUCCEEDED, response=answered, finished_at=timezone.now()
        ),
    )

    batch = run_batch(serving_tenant, batch_id)

    assert batch.status == BatchStatus.EXPIRED
    assert batch.expired_at is not None
    assert (batch.completed, batch.failed) == (1, LINES - 1)
    output = file_lines(serving_tenant, batch.output_file_id)
    assert [(line["custom_id"], line["response"]) for line in output] == [("c1", answered)]
    errors = file_lines(serving_tenant, batch.error_file_id)
    assert [(line["custom_id"], line["response"], line["error"]["code"]) for line in errors] == [
        ("c2", None, "batch_expired"),
        ("c3", None, "batch_expired"),
    ]


def test_a_batch_cancelled_before_it_runs_calls_none_of_its_lines(
    serving_tenant: TenantFixture, registry: str
) -> None:
    batch_id = make_lines(serving_tenant, status=BatchStatus.CANCELLING, cancelling_at=timezone.now())

    batch = run_batch(serving_tenant, batch_id)

    assert batch.status == BatchStatus.CANCELLED
    assert batch.cancelled_at is not None
    assert (batch.completed, batch.failed, batch.output_file_id, batch.error_file_id) == (0, 0, "", "")
    assert lines_by_status(serving_tenant, batch_id) == {LineStatus.PENDING: ["c1", "c2", "c3"]}


def test_a_cancel_between_rounds_ends_the_batch_before_its_next_lines(
    serving_tenant: TenantFixture, registry: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BATCH_CONCURRENCY = 1
    batch_id = make_lines(serving_tenant)
    record = runner.record

    def record_then_cancel(batch: Batch, results: list[runner.LineResult]) -> None:
        """What cancel_batch writes, as if its request arrived while this round was in flight."""
        record(batch, results)
        Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.CANCELLING, cancelling_at=timezone.now())

    monkeypatch.setattr(runner, "record", record_then_cancel)

    batch = run_batch(serving_tenant, batch_id)

    assert batch.status == BatchStatus.CANCELLED
    assert (batch.completed, batch.failed) == (1, 0)
    assert lines_by_status(serving_tenant, batch_id) == {
        LineStatus.SUCCEEDED: ["c1"],
        LineStatus.PENDING: ["c2", "c3"],
    }
    assert [line["custom_id"] for line in file_lines(serving_tenant, batch.output_file_id)] == ["c1"]
    assert batch.error_file_id == ""


def test_the_sweeper_queues_again_an_active_batch_gone_silent(
    tenant: TenantFixture, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    now = timezone.now()
    silent_for = timedelta(seconds=settings.BATCH_STALE_SECONDS + 1)
    with tenant_context(tenant.tenant):

        def batch(status: str, heartbeat: datetime) -> str:
            return Batch.objects.create(
                endpoint=BatchEndpoint.CHAT_COMPLETIONS,
                input_file_id="file-none",
                api_key_id=tenant.provisioned.issued_key.api_key.pk,
                expires_at=now + timedelta(hours=24),
                status=status,
                heartbeat_at=heartbeat,
            ).pk

        silent = batch(BatchStatus.IN_PROGRESS, now - silent_for)
        beating = batch(BatchStatus.IN_PROGRESS, now - timedelta(seconds=1))
        over = batch(BatchStatus.COMPLETED, now - silent_for)

        with django_capture_on_commit_callbacks() as sent:
            queued = sweep_schema(now)

        heartbeats = dict(Batch.objects.values_list("pk", "heartbeat_at"))
        assert sweep_schema(now) == 0  # touched: the next sweep waits a whole period
    assert (queued, len(sent)) == (1, 1)
    assert heartbeats[silent] == now
    assert heartbeats[beating] == now - timedelta(seconds=1)
    assert heartbeats[over] == now - silent_for


def test_the_sweep_task_covers_every_tenant(
    tenant: TenantFixture, other_tenant: TenantFixture, django_capture_on_commit_callbacks: Any
) -> None:
    long_ago = timezone.now() - timedelta(hours=1)
    silent = []
    for owner in (tenant, other_tenant):
        with tenant_context(owner.tenant):
            made = Batch.objects.create(
                endpoint=BatchEndpoint.CHAT_COMPLETIONS,
                input_file_id="file-none",
                api_key_id=owner.provisioned.issued_key.api_key.pk,
                expires_at=timezone.now() + timedelta(hours=24),
                heartbeat_at=long_ago,
            )
            silent.append((owner, made.pk))

    with django_capture_on_commit_callbacks():
        assert sweep() >= 2

    for owner, batch_id in silent:
        with tenant_context(owner.tenant):
            assert Batch.objects.get(pk=batch_id).heartbeat_at != long_ago
