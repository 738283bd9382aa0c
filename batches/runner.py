"""Running a batch on a Celery worker.

- One worker at a time: a session-level PostgreSQL advisory lock per batch,
  released by PostgreSQL when a worker dies, so a redelivered task resumes at
  once while a duplicate delivery beside a live worker does nothing.
- Bounded: at most settings.BATCH_CONCURRENCY lines at once, on the thread's
  event loop, each through the in-process gateway as the key that created the
  batch (its limits, budget, ledger and request logs), billed at the plan's
  batch price.
- Resumable: a line's answer is recorded before it counts, and only pending
  lines are called; a line sent again after a crash mid-call keeps its request
  id (BatchLine.request_id), so the usage ledger bills it once.
- Our own rate limiter's 429 waits (Retry-After) and sends the line again; a
  spent budget fails the line and every line still pending with that error.
- Between rounds: a heartbeat (the sweeper queues a silent batch again), a
  cancel request ends the batch `cancelled`, a batch past its window `expired`.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from batches import output_files
from batches.models import ACTIVE_STATUSES, Batch, BatchEndpoint, BatchLine, BatchStatus, LineStatus
from gateway.errors import GatewayError
from gateway.metering import DENIALS
from gateway.transports.inprocess import FULL_PRICE, InProcessGateway
from ingestion.runtime import runtime
from tenants.context import current_schema_name
from tenants.models import ApiKey
from tenants.selectors import usable_api_key_by_id

# The first key of the two-key advisory lock: batches' own namespace.
ADVISORY_LOCK_NAMESPACE = 1_405_002
OUR_LIMITER_CODES = frozenset({*DENIALS, "limits_unavailable"})
BUDGET_ERROR_TYPE = "insufficient_quota"
RETRY_AFTER_DEFAULT_SECONDS = 1.0
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


@dataclass(frozen=True, slots=True)
class LineResult:
    line_id: int
    succeeded: bool
    response: dict[str, Any] | None
    error: dict[str, Any] | None = None
    budget_spent: bool = False


def run(batch_id: str) -> None:
    """Run the batch's pending lines and finish it, if it is active and no live worker holds it."""
    with batch_lock(batch_id) as locked:
        if not locked or claim(batch_id) is None:
            return
        batch = Batch.objects.get(pk=batch_id)
        api_key = batch_api_key(batch)
        if api_key is None:
            fail_pending(batch, "invalid_api_key", "The API key that created this batch is no longer usable.")
            output_files.finish(batch_id, BatchStatus.COMPLETED)
        else:
            run_lines(batch, api_key)


@contextmanager
def batch_lock(batch_id: str) -> Iterator[bool]:
    key = zlib.crc32(f"{current_schema_name()}:{batch_id}".encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, key])
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, key])


def claim(batch_id: str) -> Batch | None:
    """The batch, `in_progress` if it was validating, with one more attempt; None once it is over."""
    now = timezone.now()
    Batch.objects.filter(pk=batch_id, status=BatchStatus.VALIDATING).update(
        status=BatchStatus.IN_PROGRESS, in_progress_at=now
    )
    claimed = Batch.objects.filter(pk=batch_id, status__in=ACTIVE_STATUSES).update(
        attempts=F("attempts") + 1, heartbeat_at=now
    )
    return Batch.objects.get(pk=batch_id) if claimed else None


def batch_api_key(batch: Batch) -> ApiKey | None:
    """The key that created the batch, if it is still usable and of this schema's tenant (fails closed)."""
    api_key = usable_api_key_by_id(batch.api_key_id)
    if api_key is None or api_key.tenant.schema_name != current_schema_name():
        return None
    return api_key


def price_factor(api_key: ApiKey) -> Decimal:
    plan = api_key.tenant.plan
    return plan.batch_price_factor if plan is not None else FULL_PRICE


def run_lines(batch: Batch, api_key: ApiKey) -> None:
    factor = price_factor(api_key)
    while True:
        batch = beat(batch.pk)
        if batch.status == BatchStatus.CANCELLING:
            output_files.finish(batch.pk, BatchStatus.CANCELLED)
            return
        if timezone.now() >= batch.expires_at:
            fail_pending(batch, "batch_expired", EXPIRED_MESSAGE)
            output_files.finish(batch.pk, BatchStatus.EXPIRED)
            return
        lines = list(
            batch.lines.filter(status=LineStatus.PENDING).order_by("line")[: settings.BATCH_CONCURRENCY]
        )
        if not lines:
            break
        rt = runtime()
        results = rt.run(call_lines(rt.gateway, api_key, batch.endpoint, lines, factor))
        record(batch, results)
        spent = next((result for result in results if result.budget_spent), None)
        if spent is not None:
            message = str(
                (spent.response or {}).get("body", {}).get("error", {}).get("message", "Budget spent.")
            )
            fail_pending(batch, BUDGET_ERROR_TYPE, message)
            break
    output_files.finish(batch.pk, BatchStatus.COMPLETED)


def beat(batch_id: str) -> Batch:
    Batch.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now())
    return Batch.objects.get(pk=batch_id)


async def call_lines(
    gateway: InProcessGateway, api_key: ApiKey, endpoint: str, lines: list[BatchLine], factor: Decimal
) -> list[LineResult]:
    return list(
        await asyncio.gather(*(call_line(gateway, api_key, endpoint, line, factor) for line in lines))
    )


async def call_line(
    gateway: InProcessGateway, api_key: ApiKey, endpoint: str, line: BatchLine, factor: Decimal
) -> LineResult:
    """The line's answer as OpenAI's output `response`; our limiter's refusals are waited out."""
    request_id = line.request_id
    for _ in range(settings.BATCH_RATE_LIMIT_RETRIES + 1):
        try:
            if endpoint == BatchEndpoint.EMBEDDINGS:
                data = (await gateway.embeddings(api_key, line.body, request_id, price_factor=factor)).data
            else:
                data = (await gateway.chat(api_key, line.body, request_id, price_factor=factor)).data
        except GatewayError as error:
            if error.code in OUR_LIMITER_CODES and error.type != BUDGET_ERROR_TYPE:
                await asyncio.sleep(error.retry_after or RETRY_AFTER_DEFAULT_SECONDS)
                continue
            response = {"status_code": error.status, "request_id": request_id, "body": error.body()}
            return LineResult(line.pk, False, response, budget_spent=error.type == BUDGET_ERROR_TYPE)
        return LineResult(line.pk, True, {"status_code": 200, "request_id": request_id, "body": data})
    refused = {
        "code": "rate_limit_exceeded",
        "message": "Your rate limits refused this request too many times.",
    }
    return LineResult(line.pk, False, None, refused)


def record(batch: Batch, results: list[LineResult]) -> None:
    """Store each line's answer (a line already finished is left alone), then count."""
    now = timezone.now()
    with transaction.atomic():
        for result in results:
            BatchLine.objects.filter(pk=result.line_id, status=LineStatus.PENDING).update(
                status=LineStatus.SUCCEEDED if result.succeeded else LineStatus.FAILED,
                response=result.response,
                error=result.error,
                finished_at=now,
            )
        count(batch.pk)


def fail_pending(batch: Batch, code: str, message: str) -> None:
    with transaction.atomic():
        batch.lines.filter(status=LineStatus.PENDING).update(
            status=LineStatus.FAILED, error={"code": code, "message": message}, finished_at=timezone.now()
        )
        count(batch.pk)


def count(batch_id: str) -> None:
    """The batch's request counts, from its lines."""
    counts = BatchLine.objects.filter(batch_id=batch_id).aggregate(
        completed=Count("pk", filter=Q(status=LineStatus.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=LineStatus.FAILED)),
    )
    Batch.objects.filter(pk=batch_id).update(completed=counts["completed"], failed=counts["failed"])
