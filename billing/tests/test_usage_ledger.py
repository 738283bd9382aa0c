"""The usage ledger: events queued in a Redis stream reach PostgreSQL exactly once,
whatever happens to the flusher; the usage API and dashboard read them per tenant.

Each test queues on a stream of its own, so tests (and a developer's running
server) never see each other's entries. Rows committed by another connection (a
killed flusher process, a Celery worker, flusher threads) are deleted after the
test, since the test's own transaction cannot roll them back.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pytest_django import DjangoDbBlocker

from aiaas.stream_queue import CONSUMER_GROUP
from billing import tasks, usage
from billing.models import UsageEvent
from billing.selectors import UsageTotals
from billing.usage import (
    MalformedUsageEventError,
    UsageQueueUnavailableError,
    UsageRecord,
    dead_stream_of,
    flush_usage_events,
    record_usage,
)
from tenants.models import ApiKey, ApiKeyScope
from tenants.services import create_api_key
from testing.celery import worker_thread
from testing.tenants import TenantFixture

USAGE_URL = "/api/v1/usage"
DASHBOARD_USAGE_URL = "/dashboard/usage/"
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)  # rows committed outside a test's transaction live here
ABSENT_ID = 2**62  # beyond any id the test run's sequences hand out


# Helpers


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def usage_record(tenant: TenantFixture, **fields: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": f"req_{uuid.uuid4().hex}",
        "tenant_id": tenant.tenant.pk,
        "api_key_id": tenant.provisioned.issued_key.api_key.pk,
        "model": "sim-small",
        "tier": 1,
        "prompt_tokens": 12,
        "completion_tokens": 34,
        "cost_usd": Decimal("0.00004600"),
        "latency_ms": 250,
        "ttft_ms": 80,
        "status": 200,
        "error_type": "",
        "estimated": False,
        "created_at": datetime(2026, 11, 27, 12, 30, 15, 123456, tzinfo=UTC),
    }
    return UsageRecord(**{**values, **fields})


def queue(records: list[UsageRecord], stream: str) -> None:
    """Queue the records as the gateway does: concurrently, from one event loop, through
    one client whose pool makes callers wait for a connection rather than fail."""

    async def produce() -> None:
        pool = aioredis.BlockingConnectionPool.from_url(settings.REDIS_URL, max_connections=20, timeout=10)
        client = aioredis.Redis.from_pool(pool)
        try:
            await asyncio.gather(*(record_usage(client, record, stream) for record in records))
        finally:
            await client.aclose()

    asyncio.run(produce())


def flush_until_drained(stream: str, batch_size: int = 500, **options: Any) -> list[int]:
    batches = [flush_usage_events(batch_size=batch_size, stream=stream, **options)]
    while batches[-1] == batch_size:
        batches.append(flush_usage_events(batch_size=batch_size, stream=stream, **options))
    return batches


def ledger_rows(records: list[UsageRecord]) -> int:
    return UsageEvent.objects.filter(request_id__in=[record.request_id for record in records]).count()


def queue_state(stream: str) -> tuple[int, int, int]:
    """(entries in the stream, entries read and not acknowledged, entries set aside)."""
    with redis_client() as client:
        pending = client.xpending(stream, CONSUMER_GROUP)["pending"]
        return client.xlen(stream), pending, client.xlen(dead_stream_of(stream))


def on_another_connection(function: Callable[[], Any]) -> Any:
    """Run on a connection of its own, committed: the test's transaction would hide it."""

    def run() -> Any:
        try:
            return function()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"test-usage:{uuid.uuid4().hex}"
    yield name
    with redis_client() as client:
        client.delete(name, dead_stream_of(name))


@pytest.fixture
def committed_request_ids(db: None) -> Iterator[list[str]]:
    """Request ids whose rows another connection committed; deleted after the test."""
    request_ids: list[str] = []
    yield request_ids
    on_another_connection(lambda: UsageEvent.objects.filter(request_id__in=request_ids).delete())


# The record and its stream fields


def test_a_record_survives_the_trip_through_stream_fields(tenant: TenantFixture) -> None:
    record = usage_record(tenant, api_key_id=None, tier=None, ttft_ms=None, model="", estimated=True)

    fields = record.to_fields()

    assert fields["v"] == "1"
    assert fields["api_key_id"] == ""
    assert fields["estimated"] == "1"
    assert fields["created_at"] == "2026-11-27T12:30:15.123456+00:00"
    assert UsageRecord.from_fields({k.encode(): v.encode() for k, v in fields.items()}) == record


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_id", ""),
        ("request_id", "x" * 129),
        ("model", "sim\x00small"),
        ("created_at", datetime(2026, 11, 27, 12, 0)),  # naive
        ("status", 99),
        ("prompt_tokens", -1),
        ("cost_usd", Decimal("-0.01")),
        ("cost_usd", Decimal("NaN")),
        ("cost_usd", Decimal("1000000")),
        ("tier", 40_000),
    ],
)
def test_a_record_that_does_not_fit_the_ledger_is_refused(
    tenant: TenantFixture, field: str, value: object
) -> None:
    with pytest.raises(MalformedUsageEventError):
        usage_record(tenant, **{field: value})


def test_queueing_fails_with_a_clear_error_when_redis_is_down(tenant: TenantFixture) -> None:
    record = usage_record(tenant)

    async def queue_without_redis() -> None:
        client = aioredis.Redis.from_url("unix:///nonexistent/redis.sock", socket_connect_timeout=1)
        try:
            await record_usage(client, record)
        finally:
            await client.aclose()

    with pytest.raises(UsageQueueUnavailableError, match=f"usage event {record.request_id} was not queued"):
        asyncio.run(queue_without_redis())


# Flushing


def test_each_queued_request_becomes_exactly_one_ledger_row(tenant: TenantFixture, stream: str) -> None:
    served = usage_record(tenant)
    failed = usage_record(
        tenant,
        model="",
        tier=None,
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=Decimal(0),
        ttft_ms=None,
        status=503,
        error_type="provider_unavailable",
    )
    estimated = usage_record(tenant, estimated=True, api_key_id=None)
    queue([served, failed, estimated], stream)

    assert flush_usage_events(stream=stream) == 3

    rows = UsageEvent.objects.filter(tenant=tenant.tenant).order_by("status", "estimated")
    assert list(rows.values("request_id", "api_key_id", "model", "tier", "status", "estimated")) == [
        {
            "request_id": served.request_id,
            "api_key_id": served.api_key_id,
            "model": "sim-small",
            "tier": 1,
            "status": 200,
            "estimated": False,
        },
        {
            "request_id": estimated.request_id,
            "api_key_id": None,
            "model": "sim-small",
            "tier": 1,
            "status": 200,
            "estimated": True,
        },
        {
            "request_id": failed.request_id,
            "api_key_id": failed.api_key_id,
            "model": "",
            "tier": None,
            "status": 503,
            "estimated": False,
        },
    ]
    row = UsageEvent.objects.get(request_id=served.request_id)
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (12, 34, Decimal("0.00004600"))
    assert (row.latency_ms, row.ttft_ms, row.error_type) == (250, 80, "")
    assert row.created_at == served.created_at
    assert UsageEvent.objects.get(request_id=failed.request_id).error_type == "provider_unavailable"
    assert queue_state(stream) == (0, 0, 0)


def test_flushing_again_writes_nothing_more(tenant: TenantFixture, stream: str) -> None:
    records = [usage_record(tenant) for _ in range(2)]
    queue(records, stream)

    assert flush_usage_events(stream=stream) == 2
    assert flush_usage_events(stream=stream) == 0

    assert ledger_rows(records) == 2
    assert queue_state(stream) == (0, 0, 0)


def test_the_same_request_queued_twice_is_counted_once(tenant: TenantFixture, stream: str) -> None:
    record = usage_record(tenant)
    queue([record], stream)
    queue([record], stream)

    assert flush_usage_events(stream=stream) == 2

    assert ledger_rows([record]) == 1
    assert queue_state(stream) == (0, 0, 0)


def test_a_flush_takes_at_most_a_batch(tenant: TenantFixture, stream: str) -> None:
    records = [usage_record(tenant) for _ in range(5)]
    queue(records, stream)

    assert flush_until_drained(stream, batch_size=2) == [2, 2, 1]

    assert ledger_rows(records) == 5


DOOMED_FLUSHER = """
import os, sys, time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
from django.conf import settings

settings.DATABASES["default"]["NAME"] = sys.argv[1]
import django

django.setup()
from django.db import transaction

from billing import usage
from billing.models import UsageEvent


def barrier(*args, **kwargs):
    print("at the barrier", flush=True)
    time.sleep(60)


def insert_then_barrier(records):
    with transaction.atomic():
        UsageEvent.objects.bulk_create([record.to_model() for record in records], ignore_conflicts=True)
        barrier()


point = sys.argv[3]
if point == "before the insert":
    usage.store = barrier
elif point == "inside the insert transaction":
    usage.insert = insert_then_barrier
else:
    usage.acknowledge = barrier
usage.flush_usage_events(consumer="doomed", stream=sys.argv[2])
"""


def run_flusher_until_killed(stream: str, point: str) -> None:
    """Run a flusher process, stop it at `point` and SIGKILL it there."""
    process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", DOOMED_FLUSHER, connection.settings_dict["NAME"], stream, point],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready and process.stdout else ""
        assert line == "at the barrier\n", process.stderr.read() if process.stderr else line
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe:
                pipe.close()


@pytest.mark.parametrize(
    ("point", "rows_after_kill"),
    [
        ("before the insert", 0),
        ("inside the insert transaction", 0),
        ("after the commit, before the ack", 6),
    ],
)
def test_a_flusher_killed_at_any_point_leaves_each_request_counted_once(
    tenant: TenantFixture, stream: str, committed_request_ids: list[str], point: str, rows_after_kill: int
) -> None:
    records = [usage_record(tenant, created_at=LONG_AGO) for _ in range(6)]
    committed_request_ids.extend(record.request_id for record in records)
    queue(records, stream)

    run_flusher_until_killed(stream, point)

    assert ledger_rows(records) == rows_after_kill
    assert queue_state(stream) == (6, 6, 0)
    # A flusher started right away leaves them to their reader, which might still be alive...
    assert flush_usage_events(stream=stream, consumer="successor") == 0
    time.sleep(0.2)
    # ...and takes them over once they have been idle for claim_idle_ms.
    assert flush_usage_events(stream=stream, consumer="successor", claim_idle_ms=100) == 6
    assert ledger_rows(records) == 6
    assert queue_state(stream) == (0, 0, 0)
    assert flush_usage_events(stream=stream, consumer="successor", claim_idle_ms=0) == 0


def test_malformed_entries_are_set_aside_and_do_not_block_the_queue(
    tenant: TenantFixture, stream: str
) -> None:
    good = usage_record(tenant)
    with redis_client() as client:
        missing_fields = client.xadd(stream, {"v": "1", "request_id": "req_broken"})
        negative_cost = client.xadd(stream, {**usage_record(tenant).to_fields(), "cost_usd": "-1"})
        unversioned = client.xadd(stream, {"hello": "world"})
    queue([good], stream)

    assert flush_usage_events(stream=stream) == 4

    assert ledger_rows([good]) == 1
    assert UsageEvent.objects.filter(tenant=tenant.tenant).count() == 1
    assert queue_state(stream) == (0, 0, 3)
    with redis_client() as client:
        dead = client.xrange(dead_stream_of(stream))
    assert [fields[b"dead_source_id"] for _, fields in dead] == [missing_fields, negative_cost, unversioned]
    assert [fields[b"dead_reason"].decode() for _, fields in dead] == [
        "malformed: KeyError: 'tenant_id'",
        "malformed: cost_usd -1 is out of range",
        "malformed: unknown format version None",
    ]
    assert dead[2][1][b"hello"] == b"world"


def test_an_event_of_an_unknown_tenant_is_set_aside(tenant: TenantFixture, stream: str) -> None:
    orphan = usage_record(tenant, tenant_id=ABSENT_ID, api_key_id=None)
    good = usage_record(tenant)
    queue([orphan, good], stream)

    assert flush_usage_events(stream=stream) == 2

    assert ledger_rows([orphan, good]) == 1
    with redis_client() as client:
        dead = client.xrange(dead_stream_of(stream))
    assert len(dead) == 1
    assert dead[0][1][b"request_id"] == orphan.request_id.encode()
    assert dead[0][1][b"dead_reason"] == f"unknown tenant {ABSENT_ID}".encode()


def test_a_row_the_database_refuses_is_set_aside_and_the_rest_of_the_batch_stored(
    tenant: TenantFixture, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the tenant vanished between the flusher's check and its insert.
    monkeypatch.setattr(usage, "existing_tenant_ids", lambda tenant_ids: tenant_ids)
    orphan = usage_record(tenant, tenant_id=ABSENT_ID, api_key_id=None)
    good = [usage_record(tenant) for _ in range(2)]
    queue([good[0], orphan, good[1]], stream)

    assert flush_usage_events(stream=stream) == 3

    assert ledger_rows([orphan, *good]) == 2
    assert queue_state(stream) == (0, 0, 1)
    with redis_client() as client:
        dead = client.xrange(dead_stream_of(stream))
    assert dead[0][1][b"request_id"] == orphan.request_id.encode()
    assert dead[0][1][b"dead_reason"].startswith(b"refused by the database: insert or update on table")


def test_an_event_whose_key_is_gone_or_foreign_still_counts_without_the_key(
    tenant: TenantFixture, other_tenant: TenantFixture, stream: str
) -> None:
    deleted_key = usage_record(tenant, api_key_id=ABSENT_ID)
    foreign_key = usage_record(tenant, api_key_id=other_tenant.provisioned.issued_key.api_key.pk)
    queue([deleted_key, foreign_key], stream)

    assert flush_usage_events(stream=stream) == 2

    rows = UsageEvent.objects.filter(request_id__in=[deleted_key.request_id, foreign_key.request_id])
    assert [(row.tenant_id, row.api_key_id) for row in rows] == [(tenant.tenant.pk, None)] * 2


def test_200_requests_from_concurrent_producers_land_exactly_once(tenant: TenantFixture, stream: str) -> None:
    records = [usage_record(tenant) for _ in range(200)]
    queue(records, stream)

    assert flush_until_drained(stream, batch_size=64) == [64, 64, 64, 8]

    assert ledger_rows(records) == 200
    assert queue_state(stream) == (0, 0, 0)


def test_two_flushers_at_once_store_each_request_once(
    tenant: TenantFixture, stream: str, committed_request_ids: list[str]
) -> None:
    records = [usage_record(tenant, created_at=LONG_AGO) for _ in range(300)]
    committed_request_ids.extend(record.request_id for record in records)
    queue(records, stream)
    start = threading.Barrier(2)

    def flusher(name: str) -> int:
        start.wait(timeout=10)
        return sum(flush_until_drained(stream, batch_size=25, consumer=name))

    def both() -> list[int]:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(on_another_connection, partial(flusher, n)) for n in ("one", "two")]
            return [future.result() for future in futures]

    handled = both()

    assert sum(handled) == 300
    assert ledger_rows(records) == 300
    assert queue_state(stream) == (0, 0, 0)


@pytest.fixture(scope="module")
def billing_worker(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """A real worker thread on the real Redis broker, consuming a queue of this run's own."""
    queue_name = f"test-billing-{os.getpid()}"
    with (
        worker_thread(queue_name, django_db_blocker),
    ):
        yield queue_name


def test_the_flush_task_drains_the_queue_on_a_real_worker(
    billing_worker: str, tenant: TenantFixture, stream: str, committed_request_ids: list[str]
) -> None:
    records = [usage_record(tenant, created_at=LONG_AGO) for _ in range(25)]
    committed_request_ids.extend(record.request_id for record in records)
    queue(records, stream)

    result = tasks.flush_usage_events.apply_async(
        kwargs={"batch_size": 10, "stream": stream}, queue=billing_worker, ignore_result=False
    )

    assert result.get(timeout=20) == 25
    assert ledger_rows(records) == 25
    assert queue_state(stream) == (0, 0, 0)
    assert tasks.flush_usage_events.queue == "billing"


# The usage API


def add_event(tenant: TenantFixture, created_at: datetime, api_key: ApiKey | None, **fields: Any) -> None:
    values: dict[str, Any] = {
        "model": "sim-small",
        "tier": 1,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": Decimal(0),
        "status": 200,
    }
    UsageEvent.objects.create(
        request_id=f"req_{uuid.uuid4().hex}",
        tenant=tenant.tenant,
        api_key=api_key,
        created_at=created_at,
        **{**values, **fields},
    )


def march(day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.fixture
def march_usage(tenant: TenantFixture, other_tenant: TenantFixture) -> dict[str, ApiKey]:
    """Alpha's March 2026, with rows just outside it and beta's rows inside it."""
    admin = tenant.provisioned.issued_key.api_key
    reader = create_api_key(tenant.tenant, name="reader", scopes=[ApiKeyScope.READ]).api_key
    gone = create_api_key(tenant.tenant, name="gone", scopes=[ApiKeyScope.INFERENCE]).api_key
    add_event(
        tenant, march(1), admin, prompt_tokens=100, completion_tokens=50, cost_usd=Decimal("0.00012345")
    )
    add_event(
        tenant,
        march(1, 23, 59, 59),
        reader,
        model="sim-large",
        tier=2,
        prompt_tokens=200,
        completion_tokens=100,
        cost_usd=Decimal("0.001"),
    )
    add_event(tenant, march(31, 23, 59, 59, 999999), reader, prompt_tokens=10, cost_usd=Decimal("0.00000051"))
    add_event(tenant, march(15, 12), gone, model="", tier=None, status=503, error_type="provider_unavailable")
    gone.delete()
    add_event(tenant, march(1) - timedelta(microseconds=1), admin, prompt_tokens=1_000)
    add_event(tenant, march(31) + timedelta(days=1), admin, prompt_tokens=1_000)
    other_admin = other_tenant.provisioned.issued_key.api_key
    add_event(other_tenant, march(10), other_admin, prompt_tokens=7, cost_usd=Decimal("0.5"))
    return {"admin": admin, "reader": reader}


def totals(requests: int, prompt: int, completion: int, cost: str) -> dict[str, Any]:
    return {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost}


def get_usage(client: Any, **params: str) -> Any:
    return client.get(USAGE_URL, params)


def test_usage_by_day_sums_each_utc_day_of_the_period(
    api_client: Any, march_usage: dict[str, ApiKey]
) -> None:
    response = get_usage(api_client, **{"from": "2026-03-01", "to": "2026-03-31", "group_by": "day"})

    assert response.status_code == 200, response.content
    assert response.json() == {
        "object": "list",
        "data": [
            {"group": {"day": "2026-03-01"}, **totals(2, 300, 150, "0.001123")},
            {"group": {"day": "2026-03-15"}, **totals(1, 0, 0, "0.000000")},
            {"group": {"day": "2026-03-31"}, **totals(1, 10, 0, "0.000001")},
        ],
        "from": "2026-03-01",
        "to": "2026-03-31",
        "group_by": "day",
    }


def test_usage_by_model_puts_unserved_requests_under_an_empty_model(
    api_client: Any, march_usage: dict[str, ApiKey]
) -> None:
    response = get_usage(api_client, **{"from": "2026-03-01", "to": "2026-03-31", "group_by": "model"})

    assert response.status_code == 200, response.content
    assert response.json()["data"] == [
        {"group": {"model": ""}, **totals(1, 0, 0, "0.000000")},
        {"group": {"model": "sim-large"}, **totals(1, 200, 100, "0.001000")},
        {"group": {"model": "sim-small"}, **totals(2, 110, 50, "0.000124")},
    ]


def test_usage_by_tier_lists_unserved_requests_last(api_client: Any, march_usage: dict[str, ApiKey]) -> None:
    response = get_usage(api_client, **{"from": "2026-03-01", "to": "2026-03-31", "group_by": "tier"})

    assert response.status_code == 200, response.content
    assert response.json()["data"] == [
        {"group": {"tier": 1}, **totals(2, 110, 50, "0.000124")},
        {"group": {"tier": 2}, **totals(1, 200, 100, "0.001000")},
        {"group": {"tier": None}, **totals(1, 0, 0, "0.000000")},
    ]


def test_usage_by_key_names_each_key_and_shows_a_deleted_key_as_nulls(
    tenant: TenantFixture, march_usage: dict[str, ApiKey]
) -> None:
    admin, reader = march_usage["admin"], march_usage["reader"]
    reader_secret = create_api_key(tenant.tenant, name="report", scopes=[ApiKeyScope.READ]).secret

    response = get_usage(
        tenant.api_client(reader_secret), **{"from": "2026-03-01", "to": "2026-03-31", "group_by": "key"}
    )

    assert response.status_code == 200, response.content
    assert response.json()["data"] == [
        {
            "group": {"key_id": admin.pk, "name": "Default admin key", "prefix": admin.prefix},
            **totals(1, 100, 50, "0.000123"),
        },
        {
            "group": {"key_id": reader.pk, "name": "reader", "prefix": reader.prefix},
            **totals(2, 210, 100, "0.001001"),
        },
        {"group": {"key_id": None, "name": None, "prefix": None}, **totals(1, 0, 0, "0.000000")},
    ]


def test_usage_by_key_never_names_a_key_of_another_tenant(
    tenant: TenantFixture, other_tenant: TenantFixture, api_client: Any
) -> None:
    foreign = other_tenant.provisioned.issued_key.api_key
    add_event(tenant, march(2), foreign, prompt_tokens=5)

    response = get_usage(api_client, **{"from": "2026-03-01", "to": "2026-03-31", "group_by": "key"})

    assert response.status_code == 200, response.content
    assert response.json()["data"] == [
        {"group": {"key_id": None, "name": None, "prefix": None}, **totals(1, 5, 0, "0.000000")}
    ]
    assert foreign.prefix not in response.content.decode()


def test_usage_defaults_to_the_current_utc_month_by_day(tenant: TenantFixture, api_client: Any) -> None:
    now = timezone.now()
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    admin = tenant.provisioned.issued_key.api_key
    add_event(tenant, now, admin, prompt_tokens=3, completion_tokens=4, cost_usd=Decimal("0.25"))
    add_event(tenant, first - timedelta(microseconds=1), admin, prompt_tokens=1_000)

    response = api_client.get(USAGE_URL)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "object": "list",
        "data": [{"group": {"day": now.date().isoformat()}, **totals(1, 3, 4, "0.250000")}],
        "from": first.date().isoformat(),
        "to": last.date().isoformat(),
        "group_by": "day",
    }


def test_usage_to_alone_reports_from_the_first_of_its_month(
    api_client: Any, march_usage: dict[str, ApiKey]
) -> None:
    response = get_usage(api_client, to="2026-03-14", group_by="model")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["from"], body["to"]) == ("2026-03-01", "2026-03-14")
    assert body["data"] == [
        {"group": {"model": "sim-large"}, **totals(1, 200, 100, "0.001000")},
        {"group": {"model": "sim-small"}, **totals(1, 100, 50, "0.000123")},
    ]


WRONG_DATE = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."


NUL_REFUSED = "Null characters are not allowed."


@pytest.mark.parametrize(
    ("params", "param", "code", "message"),
    [
        ({"from": "2026-13-01"}, "from", "invalid", f"from: {WRONG_DATE}"),
        ({"to": "27/11/2026"}, "to", "invalid", f"to: {WRONG_DATE}"),
        (
            {"to": "2026-03-01\x00"},
            "to",
            "null_characters_not_allowed",
            "to: Null characters are not allowed.",
        ),
        ({"group_by": "week"}, "group_by", "invalid_choice", 'group_by: "week" is not a valid choice.'),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from", "invalid", "from: must be on or before `to`"),
        ({"from": "2026-03-02", "to": "9999-12-31"}, "to", "invalid", "to: must be before 9999-12-31"),
    ],
    ids=["no-13th-month", "not-iso", "nul-byte", "unknown-group", "from-after-to", "to-at-the-end-of-time"],
)
def test_usage_refuses_bad_parameters_naming_them(
    api_client: Any, params: dict[str, str], param: str, code: str, message: str
) -> None:
    response = api_client.get(USAGE_URL, params)

    assert response.status_code == 400
    assert response.json() == {
        "error": {"message": message, "type": "invalid_request_error", "code": code, "param": param}
    }


def test_usage_accepts_the_ends_of_the_calendar(api_client: Any, march_usage: dict[str, ApiKey]) -> None:
    response = get_usage(api_client, **{"from": "0001-01-01", "to": "9999-12-30", "group_by": "tier"})

    assert response.status_code == 200, response.content
    assert [row["requests"] for row in response.json()["data"]] == [4, 1, 1]


def test_another_tenants_key_sees_only_its_own_usage(
    outsider_client: Any, other_tenant: TenantFixture, march_usage: dict[str, ApiKey]
) -> None:
    response = get_usage(outsider_client, **{"from": "2026-03-01", "to": "2026-03-31", "group_by": "key"})

    assert response.status_code == 200, response.content
    other_admin = other_tenant.provisioned.issued_key.api_key
    assert response.json()["data"] == [
        {
            "group": {"key_id": other_admin.pk, "name": "Default admin key", "prefix": other_admin.prefix},
            **totals(1, 7, 0, "0.500000"),
        }
    ]
    for key in march_usage.values():
        assert key.prefix not in response.content.decode()


def test_a_key_without_the_read_scope_is_forbidden(
    tenant: TenantFixture, march_usage: dict[str, ApiKey]
) -> None:
    inference_only = create_api_key(tenant.tenant, name="app", scopes=[ApiKeyScope.INFERENCE]).secret

    response = tenant.api_client(inference_only).get(USAGE_URL)

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert "sim-small" not in response.content.decode()


# The dashboard


def test_the_dashboard_usage_page_shows_this_months_numbers(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    now = timezone.now()
    admin = tenant.provisioned.issued_key.api_key
    add_event(tenant, now, admin, prompt_tokens=100, completion_tokens=20, cost_usd=Decimal("0.0125"))
    add_event(tenant, now, admin, prompt_tokens=50, completion_tokens=10, cost_usd=Decimal("0.0025"))
    add_event(tenant, now, admin, model="", tier=None, status=503)
    add_event(tenant, now - timedelta(days=40), admin, prompt_tokens=9_999)
    add_event(other_tenant, now, other_tenant.provisioned.issued_key.api_key, prompt_tokens=777_777)

    response = tenant.web_client().get(DASHBOARD_USAGE_URL)

    assert response.status_code == 200
    assert response.context["totals"] == UsageTotals(3, 150, 30, Decimal("0.01500000"))
    assert [(group.identity, group.totals.requests) for group in response.context["by_day"]] == [
        ({"day": now.date().isoformat()}, 3)
    ]
    assert [(group.identity, group.totals.requests) for group in response.context["by_model"]] == [
        ({"model": ""}, 1),
        ({"model": "sim-small"}, 2),
    ]
    content = response.content.decode()
    assert '<div class="stat-value" id="total-requests">3</div>' in content
    assert '<div class="stat-value" id="total-prompt-tokens">150</div>' in content
    assert '<div class="stat-value" id="total-completion-tokens">30</div>' in content
    assert '<div class="stat-value" id="total-cost">$0.0150</div>' in content
    assert "<td><code>sim-small</code></td>\n          <td>2</td>" in content
    assert 'href="/dashboard/usage/" aria-current="page">Usage</a>' in content
    assert "777777" not in content
    # The charts follow the range picked, from the analytics read model (analytics/tests/test_chart_pages.py).
    assert '<a href="?range=7d" aria-current="true">7 days</a>' in content
    assert response.context["date_range"].preset == "7d"


def test_the_dashboard_usage_page_needs_a_signed_in_user(tenant: TenantFixture) -> None:
    response = tenant.web_client(logged_in=False).get(DASHBOARD_USAGE_URL)

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/dashboard/usage/"
