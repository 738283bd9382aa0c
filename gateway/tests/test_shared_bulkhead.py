"""A provider's concurrency cap holds across processes (Redis leases), and a dead
process's leases come back when they end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from gateway.providers import FailureKind, ProviderClient, ProviderError, UpstreamTiming
from gateway.resilience import BulkheadFullError, Deadline, SharedBulkhead
from gateway.simulated.provider import SimulatorConfig
from routing.catalog import ModelSpec, ProviderSpec
from testing.simulated import running_simulated_provider

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}
HOLDER = """
import asyncio, contextlib, sys, django
django.setup()
import redis.asyncio as aioredis
from django.conf import settings
from gateway.resilience import SharedBulkhead

async def hold() -> None:
    bulkhead = SharedBulkhead(aioredis.Redis.from_url(settings.REDIS_URL), sys.argv[1], 3, 0.5, 0)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(bulkhead.slot(1.0))
        print("holding", flush=True)
        await asyncio.sleep(60)

asyncio.run(hold())
"""


def spec(url: str, max_concurrent: int) -> ModelSpec:
    provider = ProviderSpec(
        f"shared-{uuid.uuid4().hex[:8]}",
        "Shared",
        url,
        "none",
        None,
        {},
        1.0,
        5.0,
        10.0,
        max_concurrent,
        True,
    )
    return ModelSpec(
        "shared-small", provider, "sim-small", 1, 4096, Decimal(1), Decimal(1), True, True, False
    )


def test_the_cap_holds_across_processes_and_a_killed_holders_leases_expire() -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", HOLDER, name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "testing.settings"},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"

    async def scenario() -> float:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        bulkhead = SharedBulkhead(client, name, 3, 0.2, 0)
        try:
            async with bulkhead.slot(10):
                with pytest.raises(BulkheadFullError):
                    async with bulkhead.slot(10):
                        pass
                holder.send_signal(signal.SIGKILL)
                holder.wait(timeout=10)
                killed_at = time.monotonic()
                bulkhead.max_wait_seconds = 3.0
                async with bulkhead.slot(10), bulkhead.slot(10):
                    return time.monotonic() - killed_at
        finally:
            await client.aclose()

    waited = asyncio.run(scenario())

    assert waited < 1.5  # the killed holder's leases ended 1 s after it took them


def test_two_gateway_processes_share_a_providers_slots() -> None:
    """Two provider clients (two processes' worth of per-process bulkheads) over one
    Redis: a provider with one slot serves one call at a time between them."""
    with running_simulated_provider(SimulatorConfig(latency_ms=1_500)) as url:
        model = spec(url, max_concurrent=1)

        async def calls() -> list[object]:
            redis = aioredis.Redis.from_url(settings.REDIS_URL)
            first, second = ProviderClient(redis), ProviderClient(redis)
            try:

                def call(client: ProviderClient) -> asyncio.Future[dict[str, object]]:
                    return asyncio.ensure_future(
                        client.post_json(model, "/chat/completions", BODY, Deadline(10), UpstreamTiming(), 1)
                    )

                held = call(first)
                await asyncio.sleep(0.1)
                return list(await asyncio.gather(held, call(second), return_exceptions=True))
            finally:
                await first.aclose()
                await second.aclose()
                await redis.aclose()

        results = asyncio.run(calls())

    assert isinstance(results[0], dict)
    assert isinstance(results[1], ProviderError)
    assert results[1].kind is FailureKind.BULKHEAD_FULL


def test_a_lease_is_released_when_its_call_fails() -> None:
    async def scenario() -> int:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        bulkhead = SharedBulkhead(client, f"test-{uuid.uuid4().hex[:8]}", 1, 0.1)
        try:
            with pytest.raises(RuntimeError):
                async with bulkhead.slot(10):
                    raise RuntimeError("upstream broke")
            async with bulkhead.slot(10):
                return int(await client.zcard(bulkhead.key))
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == 1


def test_an_unreachable_redis_admits_the_call() -> None:
    async def scenario() -> bool:
        client = aioredis.Redis.from_url("unix:///nonexistent/redis.sock")
        try:
            async with SharedBulkhead(client, "unreachable", 1, 0.1).slot(10):
                return True
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) is True
