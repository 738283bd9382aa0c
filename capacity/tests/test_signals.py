"""The signals read from where they are kept: the gateway's own latency reaches Redis
from real /v1 traffic, and the load per tenant comes from the ledger."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import redis
from django.conf import settings
from django.utils import timezone

from aiaas.redis_clients import new_async_client, sync_client
from billing.models import UsageEvent
from capacity import signals
from capacity.latency import (
    BUCKETS_MS,
    MIN_REQUESTS,
    WINDOW_SECONDS,
    Kind,
    bucket_percentile,
    flush,
    percentile_ms,
)
from capacity.selectors import top_tenants_by_load
from testing.tenants import TenantFixture


def test_the_p95_is_interpolated_inside_its_bucket() -> None:
    counts = [0] * (len(BUCKETS_MS) + 1)
    counts[0], counts[3], counts[-1] = 90, 9, 1  # 1 ms, 10 ms, over the last bound

    assert bucket_percentile(counts, 0.95) == pytest.approx(5 + 5 * 5 / 9)
    assert bucket_percentile(counts, 0.999) == BUCKETS_MS[-1] * 2
    assert bucket_percentile([0] * len(counts), 0.95) is None


def test_requests_all_under_a_threshold_at_a_bucket_bound_do_not_reach_it() -> None:
    """DEGRADE_THRESHOLDS' overhead thresholds (50 and 250 ms) are bucket bounds: a
    p95 read as its bucket's upper bound entered them at 26 and 101 ms."""
    counts = [0] * (len(BUCKETS_MS) + 1)
    counts[BUCKETS_MS.index(50)] = 100  # every request between 25 and 50 ms

    p95 = bucket_percentile(counts, 0.95)

    assert p95 is not None
    assert 25 < p95 < 50


def test_one_slow_request_is_not_a_latency_signal() -> None:
    """A fresh platform's first /v1 request (164 ms, a cold process) read as the p95
    of the last minute set the level to critical and shed every normal key for 100 s."""
    client = sync_client("gateway")
    now = 1_000_000_000.0 + random.randrange(1_000_000) * WINDOW_SECONDS  # windows no other test writes
    counts = {kind: [0] * (len(BUCKETS_MS) + 1) for kind in Kind}
    counts[Kind.OVERHEAD][BUCKETS_MS.index(250)] = 1
    asyncio.run(flush_with_a_client_of_its_own(counts, now))

    assert percentile_ms(client, Kind.OVERHEAD, 60, now=now) is None

    counts[Kind.OVERHEAD][BUCKETS_MS.index(250)] = MIN_REQUESTS - 1
    asyncio.run(flush_with_a_client_of_its_own(counts, now))

    assert percentile_ms(client, Kind.OVERHEAD, 60, now=now) == pytest.approx(100 + 150 * 0.95)


async def flush_with_a_client_of_its_own(counts: dict[Kind, list[int]], now: float) -> None:
    client = new_async_client("gateway")
    try:
        await flush(client, counts, now)
    finally:
        await client.aclose()


def test_gateway_latency_from_v1_traffic_reaches_the_evaluators_signals(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "Measure me."}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}"}
    deadline = time.monotonic() + 10
    measured: signals.Signals = {}
    with httpx.Client(headers=headers, timeout=30) as client:
        while time.monotonic() < deadline:
            for _ in range(MIN_REQUESTS):
                response = client.post(f"{gateway}/chat/completions", json=body)
                assert response.status_code == 200, response.text
            measured = signals.measure()
            if measured["gateway_overhead_p95_ms"] is not None and measured["upstream_p95_ms"] is not None:
                break

    assert measured["gateway_overhead_p95_ms"] is not None
    assert measured["upstream_p95_ms"] is not None
    assert set(measured) == set(signals.READERS)
    assert measured["usage_flush_lag_seconds"] is not None
    assert measured["celery_queue_depth"] is not None


def usage(tenant: TenantFixture, request_id: str, seconds_ago: float) -> UsageEvent:
    return UsageEvent.objects.create(
        request_id=request_id,
        tenant=tenant.tenant,
        model="sim-small",
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=Decimal("0"),
        latency_ms=1,
        status=200,
        created_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def test_top_tenants_are_the_busiest_in_the_last_minute_of_the_ledger(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    for index in range(3):
        usage(tenant, f"req_load_a{index}", 5)
    usage(other_tenant, "req_load_b0", 5)
    usage(other_tenant, "req_load_b1", 600)

    loads = [(load.slug, load.requests, load.tokens) for load in top_tenants_by_load()]

    assert loads[:2] == [(tenant.tenant.slug, 3, 45), (other_tenant.tenant.slug, 1, 15)]


def test_one_failed_provider_call_is_not_an_error_rate() -> None:
    """A quiet platform's one timed-out call read as a 100% error rate: critical, every
    normal key shed. A database of the test Redis no other test uses holds the windows."""
    client = redis.Redis.from_url(settings.REDIS_URL, db=9)
    window = "breaker:{signals-test}:window"
    try:
        client.hset(window, mapping={"c1": 1, "f1": 1})

        assert signals.provider_error_rate(client) is None

        client.hset(window, mapping={"c1": signals.MIN_PROVIDER_CALLS, "f1": 5})

        assert signals.provider_error_rate(client) == 5 / signals.MIN_PROVIDER_CALLS
    finally:
        client.delete(window)
        client.close()
