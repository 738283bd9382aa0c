"""A Redis failure at settle time loses nothing: the usage event and the
reservation's reconcile are spooled to disk, and land (the event in the
ledger, the reservation released) once Redis answers again."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.management import CommandError, call_command
from pytest_django import Settings

from billing.limits import Limiter
from billing.models import UsageEvent
from billing.usage import flush_usage_events
from gateway import spool
from gateway.metering import Meter
from gateway.service import GatewayClients, RequestContext
from routing.catalog import ModelSpec, ProviderSpec
from routing.policy import RoutePlan
from tenants.selectors import find_usable_api_key
from testing.tenants import TenantFixture

PROVIDER = ProviderSpec("spool", "Spool", "http://spool/v1", "none", None, {}, 1.0, 1.0, 1.0, 8, True)
MODEL = ModelSpec("spool-model", PROVIDER, "m", 1, 8192, Decimal("1"), Decimal("2"), True, True, False)


def test_a_settle_while_redis_is_down_is_spooled_then_lands(
    serving_tenant: TenantFixture, settings: Settings, tmp_path: Path
) -> None:
    settings.USAGE_SPOOL_DIR = tmp_path / "spool"
    api_key = find_usable_api_key(serving_tenant.admin_key)
    assert api_key is not None
    request_id = f"req_{uuid.uuid4().hex}"

    async def scenario() -> tuple[int, int, int]:
        live = aioredis.Redis.from_url(settings.REDIS_URL)
        dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        limiter = Limiter(live)
        clients = GatewayClients()
        clients.__dict__["redis"] = dead  # Redis is lost after admission
        context = RequestContext(request_id, api_key=api_key, clients=clients)
        context.meter = Meter(limiter, api_key)
        await context.meter.admit(RoutePlan((MODEL,), "test"), 100, 20)
        period = context.meter.reservation.period  # type: ignore[union-attr]
        reserved_before = (await limiter.usage(tenant_id=api_key.tenant_id, period=period)).reserved_tokens
        context.meter.limiter = Limiter(dead)
        context.outcome.model = MODEL
        context.outcome.usage.count(MODEL, 40, 10)
        context.succeed()

        await context.settle()
        spooled = len(spool.pending())
        replayed = await spool.replay(live, limiter)
        reserved_after = (await limiter.usage(tenant_id=api_key.tenant_id, period=period)).reserved_tokens
        await live.aclose()
        return spooled, replayed, reserved_before - reserved_after

    spooled, replayed, released = asyncio.run(scenario())

    assert (spooled, replayed, released) == (1, 1, 120)
    assert spool.pending() == []
    while flush_usage_events(batch_size=1000) == 1000:
        pass
    event = UsageEvent.objects.get(request_id=request_id)
    assert (event.prompt_tokens, event.completion_tokens, event.status) == (40, 10, 200)


def test_a_dead_lettered_usage_event_can_be_queued_again(serving_tenant: TenantFixture) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    request_id = f"req_{uuid.uuid4().hex}"
    fields = {
        "v": "1",
        "request_id": request_id,
        "tenant_id": str(serving_tenant.tenant.pk),
        "api_key_id": "",
        "model": "sim-small",
        "tier": "1",
        "prompt_tokens": "3",
        "completion_tokens": "4",
        "cost_usd": "0.00000100",
        "latency_ms": "5",
        "ttft_ms": "",
        "status": "200",
        "error_type": "",
        "estimated": "0",
        "created_at": "2026-12-01T00:00:00+00:00",
        "dead_reason": "tenant unknown at the time",
        "dead_source_id": "1-0",
    }
    dead_stream = f"{settings.USAGE_STREAM}:dead"
    with client:
        entry_id = client.xadd(dead_stream, fields)  # type: ignore[arg-type]

        call_command("replay_dead_usage_events")

        assert client.xrange(dead_stream, min=entry_id, max=entry_id) == []
    while flush_usage_events(batch_size=1000) == 1000:
        pass
    event = UsageEvent.objects.get(request_id=request_id)
    assert (event.prompt_tokens, event.completion_tokens) == (3, 4)


@pytest.mark.parametrize("limit", [0, -1])
def test_replaying_dead_letters_needs_a_positive_limit(limit: int) -> None:
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        call_command("replay_dead_usage_events", limit=limit)
