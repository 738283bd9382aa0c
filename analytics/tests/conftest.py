"""Analytics tests read through the `analytics` alias, a second connection that cannot
see a test's uncommitted rows. So ledger rows are committed on a connection of
their own (through the flusher's real insert), each test in a time window of its
own far in the past, and deleted with their rollups after the test."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from django.db import connection

from analytics import rollups
from analytics.models import DailyRollup, HourlyRollup
from billing.models import UsageEvent
from billing.usage import UsageRecord, insert
from testing.tenants import TenantFixture

T = TypeVar("T")
WINDOWS = itertools.count()


def on_another_connection(function: Callable[[], T]) -> T:
    """Run on a connection of its own, committed: the test's transaction would hide it."""

    def run() -> T:
        try:
            return function()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def apply_all() -> int:
    """Run the rollup worker, committed, until it has nothing left."""
    return on_another_connection(lambda: rollups.apply_rollups(time_budget_seconds=600))


@dataclass
class Ledger:
    """Committed ledger rows of this test, in [start, start + 60 days)."""

    start: datetime
    request_ids: list[str] = field(default_factory=list)

    def record(self, tenant: TenantFixture, at: datetime, **fields: Any) -> UsageRecord:
        values: dict[str, Any] = {
            "request_id": f"req_{uuid.uuid4().hex}",
            "tenant_id": tenant.tenant.pk,
            "api_key_id": tenant.provisioned.issued_key.api_key.pk,
            "model": "sim-small",
            "tier": 1,
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "cost_usd": Decimal("0.00003000"),
            "latency_ms": 250,
            "ttft_ms": 80,
            "status": 200,
            "error_type": "",
            "estimated": False,
            "created_at": at,
        }
        return UsageRecord(**(values | fields))

    def add(self, records: list[UsageRecord]) -> None:
        self.request_ids += [record.request_id for record in records]
        on_another_connection(lambda: insert(records))

    def delete(self) -> None:
        end = self.start + timedelta(days=60)

        def delete_all() -> None:
            UsageEvent.objects.filter(request_id__in=self.request_ids).delete()
            for model in (HourlyRollup, DailyRollup):
                model.objects.filter(bucket_start__gte=self.start, bucket_start__lt=end).delete()

        on_another_connection(delete_all)


@pytest.fixture
def ledger(db: None) -> Iterator[Ledger]:
    # A window no other test's rows share, long before any real traffic.
    start = datetime(1980, 1, 1, tzinfo=UTC) + timedelta(days=60 * next(WINDOWS))
    ledger = Ledger(start)
    yield ledger
    ledger.delete()
