"""The signals read from where they are kept: the gateway's own latency reaches Redis
from real /v1 traffic, and the load per tenant comes from the ledger."""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import redis
import redis.asyncio as aioredis
from django.utils import timezone
from pytest_django import Settings

from billing.models import UsageEvent
from capacity import latency, signals
from capacity.latency import BUCKETS_MS, Kind, bucket_percentile
from capacity.selectors import top_tenants_by_load
from testing.tenants import TenantFixture


def test_the_p95_is_the_upper_bound_of_its_bucket() -> None:
    counts = [0] * (len(BUCKETS_MS) + 1)
    counts[0], counts[3], counts[-1] = 90, 9, 1  # 1 ms, 10 ms, over the last bound

    assert bucket_percentile(counts, 0.95) == 10.0
    assert bucket_percentile(counts, 0.999) == BUCKETS_MS[-1] * 2
    assert bucket_percentile([0] * len(counts), 0.95) is None


def record_overheads(at: float, count: int, milliseconds: float) -> None:
    counts = {kind: [0] * (len(BUCKETS_MS) + 1) for kind in Kind}
    counts[Kind.OVERHEAD][bucket_index(milliseconds)] = count

    async def flush() -> None:
        async with aioredis.Redis.from_url(os.environ["REDIS_URL"]) as client:
            await latency.flush(client, counts, at)

    asyncio.run(flush())


def bucket_index(milliseconds: float) -> int:
    return next(index for index, bound in enumerate(BUCKETS_MS) if milliseconds <= bound)


def test_a_handful_of_slow_requests_is_no_signal_until_enough_are_measured(settings: Settings) -> None:
    """A cold start's first request (a slow catalog load) once sent a fresh `make run`
    to critical, shedding every request for a minute."""
    settings.DEGRADE_SIGNAL_MIN_SAMPLES = 20
    at = 1_000_000_000.0 + random.randrange(10**6) * 100  # windows no other test writes
    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    record_overheads(at, 19, milliseconds=240)
    few = signals.gateway_overhead_p95_ms(client, now=at)
    record_overheads(at, 1, milliseconds=240)
    enough = signals.gateway_overhead_p95_ms(client, now=at)

    assert (few, enough) == (None, 250.0)


def test_an_error_rate_over_a_handful_of_calls_is_no_signal(settings: Settings) -> None:
    settings.DEGRADE_SIGNAL_MIN_SAMPLES = 20

    assert signals.error_rate(calls=3, failures=2) is None
    assert signals.error_rate(calls=20, failures=5) == 0.25


def test_gateway_latency_from_v1_traffic_reaches_the_evaluators_signals(
    gateway: str, serving_tenant: TenantFixture, settings: Settings
) -> None:
    settings.DEGRADE_SIGNAL_MIN_SAMPLES = 1
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "Measure me."}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}"}
    deadline = time.monotonic() + 5
    measured: signals.Signals = {}
    while time.monotonic() < deadline:
        assert (
            httpx.post(f"{gateway}/chat/completions", json=body, headers=headers, timeout=30).status_code
            == 200
        )
        measured = signals.measure()
        if measured["gateway_overhead_p95_ms"] is not None and measured["upstream_p95_ms"] is not None:
            break
        time.sleep(0.3)

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
