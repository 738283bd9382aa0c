"""The rollup worker: ledger rows into the analytics read model, each exactly once.

The worker follows the ledger (billing.UsageEvent) by id. Ids are drawn when a
flush inserts its batch, and concurrent flushes commit out of id order, so "the
largest id I can see" may sit above an id still in flight. Every ledger insert
therefore holds `LEDGER_INSERT_LOCK` shared until it commits (billing/usage.py);
the worker takes it exclusively for one statement, reads max(id), and lets go:
no insert was in flight, so every id up to that high mark is committed (or
rolled back for good). It then applies the rows (watermark, high] in id order,
batch by batch, each batch in ONE transaction with the watermark's move
(a conditional UPDATE from the old value). A worker killed mid-batch commits
nothing of it; the next run starts at the same watermark.

One worker is active at a time (`ROLLUP_WORKER_LOCK`, a session advisory lock
that dies with its connection); others return at once. The rebuild command
waits for it and holds it throughout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from analytics.backends import get_backend
from analytics.backends.base import AnalyticsBackend, LedgerRow, Progress
from analytics.models import RollupWatermark
from analytics.routers import ANALYTICS_DATABASE
from billing.models import UsageEvent
from billing.usage import LEDGER_INSERT_LOCK

ROLLUP_WORKER_LOCK = 0x726F6C6C7570  # "rollup"
BATCH_SIZE = 5_000
LEDGER = UsageEvent._meta.db_table
LEDGER_COLUMNS = (
    "id, tenant_id, created_at, model, api_key_id, tier, status, error_type, "
    "prompt_tokens, completion_tokens, cost_usd, latency_ms, ttft_ms, estimated"
)
Report = Callable[[int, int], None]  # (rows applied so far, rows to apply)


class WatermarkMovedError(RuntimeError):
    """The watermark was not where this batch started: another writer ran (a bug)."""


def apply_rollups(batch_size: int = BATCH_SIZE, time_budget_seconds: float = 25.0) -> int:
    """Apply the committed ledger rows past the watermark, batch by batch, until none
    are left or the time budget is spent. Returns the rows applied; 0 at once when
    another worker holds the lock."""
    with worker_lock(wait=False) as held:
        if not held:
            return 0
        return catch_up(get_backend(), batch_size, time.monotonic() + time_budget_seconds)


def catch_up(
    backend: AnalyticsBackend, batch_size: int, deadline: float, report: Report | None = None
) -> int:
    high = committed_high()
    total = None if report is None else pending_rows(watermark_of(backend.name, DEFAULT_DB_ALIAS), high)
    applied = 0
    while time.monotonic() < deadline:
        count = apply_batch(backend, high, batch_size)
        applied += count
        if report is not None and total is not None and count:
            report(applied, total)
        if count < batch_size:
            break
    return applied


def apply_batch(backend: AnalyticsBackend, high: int, batch_size: int) -> int:
    """One batch past the watermark, applied and recorded in one transaction."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        watermark = watermark_of(backend.name, DEFAULT_DB_ALIAS)
        rows = ledger_rows(watermark, high, batch_size)
        if not rows:
            return 0
        backend.apply(rows)
        move_watermark(backend.name, watermark, rows[-1].id)
    return len(rows)


def move_watermark(backend_name: str, old: int, new: int) -> None:
    moved = RollupWatermark.objects.using(DEFAULT_DB_ALIAS).filter(backend=backend_name, ledger_id=old)
    if moved.update(ledger_id=new, updated_at=timezone.now()) != 1:
        raise WatermarkMovedError(f"{backend_name} watermark is no longer {old}")


def watermark_of(backend_name: str, using: str) -> int:
    found = (
        RollupWatermark.objects.using(using).filter(backend=backend_name).values_list("ledger_id", flat=True)
    )
    for ledger_id in found:
        return ledger_id
    if using == DEFAULT_DB_ALIAS:
        RollupWatermark.objects.using(using).create(backend=backend_name, ledger_id=0)
    return 0


def committed_high() -> int:
    """The largest ledger id below which every id is committed or gone for good."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS), connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_INSERT_LOCK])
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {LEDGER}")  # noqa: S608 - a constant
        high: int = cursor.fetchone()[0]
    return high


def ledger_rows(after: int, through: int, limit: int, tenant_id: int | None = None) -> list[LedgerRow]:
    tenant_filter = "" if tenant_id is None else " AND tenant_id = %s"
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            f"SELECT {LEDGER_COLUMNS} FROM {LEDGER}"  # noqa: S608 - constants
            f" WHERE id > %s AND id <= %s{tenant_filter} ORDER BY id LIMIT %s",
            [after, through, *([] if tenant_id is None else [tenant_id]), limit],
        )
        return [LedgerRow(*row) for row in cursor.fetchall()]


def pending_rows(watermark: int, high: int) -> int:
    return UsageEvent.objects.filter(id__gt=watermark, id__lte=high).count()


@contextmanager
def worker_lock(wait: bool) -> Iterator[bool]:
    """Hold ROLLUP_WORKER_LOCK for the block (yields False when `wait` is off and it is taken)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_lock(%s), true" if wait else "SELECT null, pg_try_advisory_lock(%s)",
            [ROLLUP_WORKER_LOCK],
        )
        held: bool = cursor.fetchone()[1]
    try:
        yield held
    finally:
        if held:
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ROLLUP_WORKER_LOCK])


def rebuild(tenant_id: int | None = None, batch_size: int = BATCH_SIZE, report: Report | None = None) -> int:
    """Rebuild the read model from the ledger; returns the rows applied.

    All tenants: forget everything and set the watermark to 0 in one
    transaction, then catch up batch by batch as the worker does (killed
    half-way, the worker goes on from where it stopped). One tenant: forget
    its rollups and replay its rows up to the watermark, in one transaction,
    so its figures never show half rebuilt.
    """
    backend = get_backend()
    with worker_lock(wait=True):
        if tenant_id is not None:
            return replay_tenant(backend, tenant_id, batch_size, report)
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            backend.reset()
            watermark_of(backend.name, DEFAULT_DB_ALIAS)
            RollupWatermark.objects.using(DEFAULT_DB_ALIAS).filter(backend=backend.name).update(ledger_id=0)
        return catch_up(backend, batch_size, float("inf"), report)


def replay_tenant(backend: AnalyticsBackend, tenant_id: int, batch_size: int, report: Report | None) -> int:
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        high = watermark_of(backend.name, DEFAULT_DB_ALIAS)
        total = UsageEvent.objects.filter(tenant_id=tenant_id, id__lte=high).count()
        backend.reset(tenant_id)
        applied, after = 0, 0
        while rows := ledger_rows(after, high, batch_size, tenant_id):
            backend.apply(rows)
            applied, after = applied + len(rows), rows[-1].id
            if report is not None:
                report(applied, total)
    return applied


def progress(backend_name: str | None = None) -> Progress:
    """How far the read model is behind the ledger, read on the analytics alias."""
    name = backend_name or get_backend().name
    watermark = watermark_of(name, ANALYTICS_DATABASE)
    pending = UsageEvent.objects.using(ANALYTICS_DATABASE).filter(id__gt=watermark)
    oldest: datetime | None = pending.order_by("id").values_list("created_at", flat=True).first()
    lag = 0.0 if oldest is None else max(0.0, (timezone.now() - oldest).total_seconds())
    return Progress(watermark_id=watermark, pending_rows=pending.count(), lag_seconds=lag)
