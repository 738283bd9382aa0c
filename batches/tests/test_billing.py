"""Batch lines are billed at the plan's batch price: the cost the ledger records."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from billing.models import Plan
from gateway.transports.inprocess import Completion, InProcessGateway
from tenants.selectors import metered_api_keys
from testing.database import committed
from testing.tenants import TenantFixture

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "Price me."}], "max_tokens": 16}


def test_a_plans_batch_discount_is_its_price_factor() -> None:
    assert Plan(batch_discount_percent=50).batch_price_factor == Decimal("0.5")
    assert Plan(batch_discount_percent=0).batch_price_factor == Decimal(1)
    assert Plan().batch_price_factor == Decimal("0.5")  # the default discount


def test_a_discounted_request_costs_the_list_price_times_the_factor(
    serving_tenant: TenantFixture, registry: str
) -> None:
    api_key = committed(lambda: metered_api_keys().get(pk=serving_tenant.provisioned.issued_key.api_key.pk))

    async def both() -> tuple[Completion, Completion]:
        gateway = InProcessGateway()
        try:
            listed = await gateway.chat(api_key, dict(BODY), f"req_{uuid.uuid4().hex}")
            batched = await gateway.chat(
                api_key, dict(BODY), f"req_{uuid.uuid4().hex}", price_factor=Decimal("0.5")
            )
            return listed, batched
        finally:
            await gateway.aclose()

    listed, batched = asyncio.run(both())

    assert (batched.prompt_tokens, batched.completion_tokens) == (
        listed.prompt_tokens,
        listed.completion_tokens,
    )
    assert listed.cost_usd > 0
    assert batched.cost_usd == listed.cost_usd * Decimal("0.5")
