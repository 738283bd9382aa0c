"""Budgets are upper bounds: a reservation covers the most a request may bill
(prompt bytes, the output limit always sent upstream), a further billed
attempt is held before it starts, and concurrent requests at a hard cap never
bill more than the cap together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
import redis.asyncio as aioredis
from django.conf import settings

from billing.limits import Limiter, current_period
from billing.models import CapMode, Plan, UsageEvent
from billing.usage import flush_usage_events
from gateway.metering import Meter
from gateway.orchestrator import Usage
from gateway.providers import FailureKind, ProviderError
from gateway.validation import estimate_tokens, prompt_tokens_bound, validate_chat
from routing.catalog import ModelSpec, ProviderSpec
from routing.policy import RoutePlan
from tenants.models import Tenant
from tenants.selectors import find_usable_api_key
from tenants.tests.factories import TenantFactory
from testing.database import committed
from testing.tenants import TenantFixture

CAP_TOKENS = 2_000
OUTPUT_LIMIT = 8
PROMPT = "Count to three."


@dataclass
class Capped:
    fixture: TenantFixture
    plan: Plan

    @property
    def key(self) -> str:
        return self.fixture.admin_key


@pytest.fixture
def capped(registry: str) -> Iterator[Capped]:
    """A tenant of its own on a hard-capped plan of CAP_TOKENS tokens a period,
    whose requests default to OUTPUT_LIMIT output tokens."""
    suffix = uuid.uuid4().hex[:8]

    def setup() -> Capped:
        plan = Plan.objects.create(
            slug=f"capped-{suffix}",
            name="Capped",
            cap_mode=CapMode.HARD,
            included_tokens=CAP_TOKENS,
            default_max_output_tokens=OUTPUT_LIMIT,
            key_requests_per_minute=10_000,
            tenant_requests_per_minute=10_000,
        )
        fixture = TenantFactory.create(slug=f"capped-{suffix}", plan_slug=plan.slug)
        return Capped(fixture, plan)

    capped = committed(setup)
    yield capped
    committed(lambda: Tenant.objects.filter(pk=capped.fixture.tenant.pk).update(is_active=False))


def ask(gateway: str, key: str, **extra: object) -> httpx.Response:
    body = {"model": "sim-small", "messages": [{"role": "user", "content": PROMPT}], **extra}
    return httpx.post(
        f"{gateway}/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=20
    )


def test_a_request_without_a_limit_gets_its_plans_output_limit_upstream(gateway: str, capped: Capped) -> None:
    answer = ask(gateway, capped.key)

    assert answer.status_code == 200
    assert answer.json()["choices"][0]["finish_reason"] == "length"
    assert answer.json()["usage"]["completion_tokens"] == OUTPUT_LIMIT
    assert len(answer.json()["choices"][0]["message"]["content"].split()) == OUTPUT_LIMIT


def test_a_requests_own_limit_is_kept(gateway: str, capped: Capped) -> None:
    answer = ask(gateway, capped.key, max_completion_tokens=3)

    assert answer.json()["usage"]["completion_tokens"] == 3


def test_fifty_concurrent_requests_at_a_hard_cap_never_bill_more_than_it(
    gateway: str, capped: Capped
) -> None:
    async def flood() -> list[httpx.Response]:
        headers = {"authorization": f"Bearer {capped.key}"}
        body = {"model": "sim-small", "messages": [{"role": "user", "content": PROMPT}]}
        async with httpx.AsyncClient(timeout=30, headers=headers) as client:
            return list(
                await asyncio.gather(
                    *(client.post(f"{gateway}/chat/completions", json=body) for _ in range(50))
                )
            )

    statuses: list[int] = []
    for _ in range(4):  # until the cap refuses: the first bursts may all fit
        statuses += [response.status_code for response in asyncio.run(flood())]
        if 429 in statuses:
            break

    assert set(statuses) == {200, 429}
    while flush_usage_events(batch_size=1000) == 1000:
        pass
    billed = UsageEvent.objects.filter(tenant_id=capped.fixture.tenant.pk, status=200)
    assert billed.count() == statuses.count(200)
    assert sum(event.prompt_tokens + event.completion_tokens for event in billed) <= CAP_TOKENS


def test_the_prompt_bound_holds_for_any_script() -> None:
    for text in ("plain English words", "日本語のテキスト" * 50, "emoji 🙂🙃" * 30, "x" * 1_000):
        chat = validate_chat({"model": "m", "messages": [{"role": "user", "content": text}]})

        # A byte-level tokenizer never makes more tokens than UTF-8 bytes.
        assert chat.prompt_tokens_bound >= len(text.encode())
        assert chat.prompt_tokens_bound >= estimate_tokens(text, 1)


def test_tools_schemas_and_images_count_in_the_prompt_bound() -> None:
    plain = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}

    assert prompt_tokens_bound({**plain, "tools": [tool]}) > prompt_tokens_bound(plain) + 40
    with_image = {"model": "m", "messages": [{"role": "user", "content": [image]}]}
    assert prompt_tokens_bound(with_image) >= 2_000


PROVIDER = ProviderSpec("sim", "Sim", "http://sim/v1", "none", None, {}, 1.0, 1.0, 1.0, 8, True)
SMALL = ModelSpec("bound-small", PROVIDER, "s", 1, 8192, Decimal("1"), Decimal("2"), True, True, False)
LARGE = ModelSpec("bound-large", PROVIDER, "l", 3, 8192, Decimal("10"), Decimal("30"), True, True, False)


def test_an_attempt_after_a_billed_one_is_held_first_or_refused(capped: Capped) -> None:
    """Early exit's next tier (or a stream continued elsewhere) may bill again: the
    guard holds the difference, and refuses when the cap has no room for it."""
    api_key = find_usable_api_key(capped.key)
    assert api_key is not None

    async def attempts() -> tuple[int, int, ProviderError | None]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        meter = Meter(Limiter(client), api_key)
        try:
            await meter.admit(RoutePlan((SMALL, LARGE), "test"), 300, OUTPUT_LIMIT)
            first_hold = meter.held.tokens
            spent = Usage()
            spent.count(SMALL, 300, OUTPUT_LIMIT)  # a rejected first answer
            await meter.guard(spent, LARGE, 300, OUTPUT_LIMIT)  # fits under the cap
            second_hold = meter.held.tokens
            spent.count(LARGE, 300, OUTPUT_LIMIT)
            refused = None
            try:
                await meter.guard(spent, LARGE, CAP_TOKENS, OUTPUT_LIMIT)  # cannot fit
            except ProviderError as error:
                refused = error
            await meter.limiter.reconcile(
                meter.reservation,  # type: ignore[arg-type]
                actual_tokens=0,
                actual_usd_micros=0,
                extended=meter.extended,
            )
            usage = await meter.limiter.usage(tenant_id=api_key.tenant_id, period=period_of(meter))
            return first_hold, second_hold, refused if usage.reserved_tokens == 0 else None
        finally:
            await client.aclose()

    first, second, refused = asyncio.run(attempts())

    assert first == 300 + OUTPUT_LIMIT
    assert second == 2 * (300 + OUTPUT_LIMIT)
    assert refused is not None
    assert refused.kind is FailureKind.BUDGET_EXHAUSTED


def period_of(meter: Meter) -> str:
    assert meter.reservation is not None
    return meter.reservation.period or current_period()
