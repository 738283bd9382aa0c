"""Limits and budgets on /v1, over real servers and the real Redis."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture

BODY = {"model": "auto", "max_tokens": 64, "messages": [{"role": "user", "content": "Count to three."}]}


def key_with(tenant: TenantFixture, **overrides: Any) -> str:
    return committed(
        lambda: create_api_key(tenant.tenant, name="limited", scopes=[ApiKeyScope.INFERENCE], **overrides)
    ).secret


def post(gateway: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway}/chat/completions", json=BODY, timeout=20, headers={"authorization": f"Bearer {key}"}
    )


def test_every_answer_carries_openai_rate_limit_headers(gateway: str, serving_tenant: TenantFixture) -> None:
    response = post(gateway, key_with(serving_tenant, requests_per_minute=7))

    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit-requests"] == "7"
    assert response.headers["x-ratelimit-remaining-requests"] == "6"
    assert {
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    } <= set(response.headers)


def test_a_key_over_its_requests_per_minute_gets_429_with_a_retry_after(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    key = key_with(serving_tenant, requests_per_minute=2)

    statuses = [post(gateway, key).status_code for _ in range(2)]
    refused = post(gateway, key)

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "key_requests"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_an_exhausted_budget_gets_429_insufficient_quota(gateway: str, serving_tenant: TenantFixture) -> None:
    response = post(gateway, key_with(serving_tenant, monthly_spend_budget_usd=Decimal("0.00")))

    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "key_spend_budget")
    assert int(response.headers["retry-after"]) >= 1


def test_concurrent_requests_never_spend_past_the_budget(gateway: str, serving_tenant: TenantFixture) -> None:
    # sim-large answers all 64 tokens it may, so each request costs what was
    # reserved for it (~$0.001): 50 of them ask for about five times this budget.
    key = key_with(serving_tenant, monthly_spend_budget_usd=Decimal("0.01"))
    body = {**BODY, "model": "sim-large"}

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {key}"}) as client:
            return list(
                await asyncio.gather(
                    *(client.post(f"{gateway}/chat/completions", json=body) for _ in range(50))
                )
            )

    responses = asyncio.run(send_all())

    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    costs = [
        Decimal(5) * r.json()["usage"]["prompt_tokens"] / 10**6
        + Decimal(15) * r.json()["usage"]["completion_tokens"] / 10**6
        for r in admitted
    ]
    assert len(admitted) + len(refused) == 50
    assert 1 <= len(admitted) <= 11
    assert sum(costs) <= Decimal("0.01") + max(costs)  # at most one request's overage
    assert {r.json()["error"]["code"] for r in refused} == {"key_spend_budget"}


def test_every_refusal_the_limiter_can_give_has_a_message() -> None:
    from billing.limits.limiter import REASONS
    from gateway.metering import DENIALS

    assert set(DENIALS) == set(REASONS)
