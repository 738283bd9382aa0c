"""What the stock SDKs' retry loops do with the gateway's 429 and 503 answers,
through the served platform: a wait the gateway asks for is honoured, and a
refusal that no wait can lift is not retried (`x-should-retry: false`)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai

from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture

MESSAGES: Any = [{"role": "user", "content": "Hi."}]


def key_with(tenant: TenantFixture, **limits: Any) -> str:
    return committed(
        lambda: create_api_key(tenant.tenant, name="sdk-retries", scopes=[ApiKeyScope.INFERENCE], **limits)
    ).secret


def counting(statuses: list[int]) -> dict[str, Any]:
    return {"event_hooks": {"response": [lambda response: statuses.append(response.status_code)]}}


def finishes_within(seconds: float, call: Any) -> BaseException | None:
    """What `call` raised, if it returned within `seconds`; it runs in a daemon
    thread, so an SDK asleep for a retry cannot hold the test."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the SDK was still retrying after {seconds} s"
    return outcome[0]


def test_an_exhausted_budget_is_not_retried_by_the_anthropic_sdk(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    key = key_with(serving_tenant, monthly_spend_budget_usd=Decimal("0.00"))
    statuses: list[int] = []
    http_client = anthropic.DefaultHttpxClient(**counting(statuses))
    client = anthropic.Anthropic(base_url=platform_url, api_key=key, max_retries=2, http_client=http_client)

    error = finishes_within(
        10, lambda: client.messages.create(model="sim-small", max_tokens=16, messages=MESSAGES)
    )

    assert isinstance(error, anthropic.RateLimitError)
    assert error.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert statuses == [429]


def test_an_exhausted_budget_is_not_retried_by_the_openai_sdk(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    key = key_with(serving_tenant, monthly_spend_budget_usd=Decimal("0.00"))
    statuses: list[int] = []
    http_client = openai.DefaultHttpxClient(**counting(statuses))
    client = openai.OpenAI(base_url=gateway, api_key=key, max_retries=2, http_client=http_client)

    error = finishes_within(10, lambda: client.chat.completions.create(model="sim-small", messages=MESSAGES))

    assert isinstance(error, openai.RateLimitError)
    assert (error.type, error.code) == ("insufficient_quota", "key_spend_budget")
    assert statuses == [429]
    assert error.response.headers["x-should-retry"] == "false"


def test_a_rate_limit_says_when_to_retry_and_may_be_retried(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    key = key_with(serving_tenant, requests_per_minute=1)
    body = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 4}
    headers = {"authorization": f"Bearer {key}"}

    first = httpx.post(f"{gateway}/chat/completions", json=body, headers=headers, timeout=20)
    refused = httpx.post(f"{gateway}/chat/completions", json=body, headers=headers, timeout=20)

    assert (first.status_code, refused.status_code) == (200, 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "x-should-retry" not in refused.headers
