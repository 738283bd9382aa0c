"""No tenant can take what tenants share: a provider's concurrent calls (a
tenant holds at most PROVIDER_TENANT_SHARE of them) and a circuit breaker's
failure budget (one tenant's timeouts cannot open it for everyone)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from gateway.orchestrator import Orchestrator, Outcome
from gateway.providers import FailureKind, ProviderClient, ProviderError, UpstreamTiming
from gateway.resilience import BreakerPolicy, BreakerState, CircuitBreaker, Deadline
from gateway.simulated.provider import SimulatorConfig
from routing.catalog import ModelSpec, ProviderSpec
from routing.policy import RoutePlan
from testing.simulated import running_simulated_provider

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}


def spec(url: str, max_concurrent: int = 4) -> ModelSpec:
    provider = ProviderSpec(
        f"share-{uuid.uuid4().hex[:8]}", "Share", url, "none", None, {}, 1.0, 5.0, 10.0, max_concurrent, True
    )
    return ModelSpec("share-small", provider, "sim-small", 1, 4096, Decimal(1), Decimal(1), True, True, False)


def test_a_tenant_holds_at_most_its_share_of_a_providers_calls() -> None:
    """Four slots, a share of one half: tenant 1's third concurrent call is refused
    while tenant 2's call still gets a slot."""
    with running_simulated_provider(SimulatorConfig(latency_ms=1_500)) as url:
        model = spec(url)

        async def calls() -> list[object]:
            client = ProviderClient()
            try:

                def call(tenant_id: int) -> asyncio.Future[dict[str, object]]:
                    return asyncio.ensure_future(
                        client.post_json(
                            model, "/chat/completions", BODY, Deadline(10), UpstreamTiming(), tenant_id
                        )
                    )

                first = [call(1), call(1)]
                await asyncio.sleep(0.1)
                late = [call(1), call(2)]
                return list(await asyncio.gather(*first, *late, return_exceptions=True))
            finally:
                await client.aclose()

        results = asyncio.run(calls())

    assert settings.PROVIDER_TENANT_SHARE == 0.5
    assert [isinstance(result, dict) for result in results] == [True, True, False, True]
    refused = results[2]
    assert isinstance(refused, ProviderError)
    assert refused.kind is FailureKind.BULKHEAD_FULL


async def fail(orchestrator: Orchestrator, model: ModelSpec, tenant_id: int, kind: FailureKind) -> None:
    async def call(model: ModelSpec) -> None:
        raise ProviderError(kind, f"{model.model_id}: {kind}")

    outcome = Outcome(tenant_id=tenant_id)
    with pytest.raises(ProviderError):
        await orchestrator.run(RoutePlan((model,), "test"), Deadline(5), outcome, call)


@pytest.mark.parametrize("kind", [FailureKind.TIMEOUT, FailureKind.SERVER_ERROR])
def test_one_tenants_timeouts_cannot_open_a_breaker_for_everyone(kind: FailureKind) -> None:
    async def scenario() -> tuple[BreakerState, BreakerState]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        breaker = CircuitBreaker(client, BreakerPolicy(failure_threshold=4), tenant_share=0.5)
        orchestrator = Orchestrator(ProviderClient(), breaker)
        model = spec("http://127.0.0.1:9/v1")
        try:
            for _ in range(6):  # single attempts: a plan of one model retries it
                await fail(orchestrator, model, 101, kind)
            alone = await breaker.state(model.breaker_key)
            for _ in range(2):
                await fail(orchestrator, model, 102, kind)
            return alone, await breaker.state(model.breaker_key)
        finally:
            await client.aclose()

    alone, together = asyncio.run(scenario())

    if kind is FailureKind.TIMEOUT:
        # Tenant 101 counts 2 of the threshold of 4; tenant 102's 2 more open it.
        assert (alone, together) == (BreakerState.CLOSED, BreakerState.OPEN)
    else:
        # A provider's own errors count in full, whoever sees them.
        assert alone is BreakerState.OPEN
