"""Billing as the gateway enforces it: a hard-cap plan refuses with 429 until
the Stripe billing period ends, and a plan change reaches the gateway's key
cache at once, not when the cached key expires.

The live platform (`gateway`) is asked as a client would ask it; the gateway's
own pieces (its key cache, the limiter) also run here on the real Redis and
PostgreSQL, for what a client cannot see (each way a change is written).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone

from billing.limits import Limiter, current_period, limits_for
from billing.models import BillingAccount, CapMode, Plan, SubscriptionStatus
from gateway.auth import KEY_CACHE_SECONDS, ApiKeyCache
from realtime.tests.clients import bearer, chat_body, open_socket, read_all, ws_url
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.selectors import find_usable_api_key, usable_api_key_by_id
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture


@dataclass
class HardCapped:
    tenant: Tenant
    key: str
    hard: Plan
    soft: Plan
    period_end: timedelta  # from now


@pytest.fixture
def hard_capped(serving_tenant: TenantFixture) -> Iterator[HardCapped]:
    """serving on a plan with 10 included tokens and a hard cap, subscribed for a
    period that ends in about an hour (committed, then undone)."""
    tenant = serving_tenant.tenant
    suffix = uuid.uuid4().hex[:8]
    # A period of its own, so no earlier run's budget counters apply.
    end = (timezone.now() + timedelta(hours=1)).replace(microsecond=0) + timedelta(
        seconds=int(suffix, 16) % 600
    )
    saved_plan_id = tenant.plan_id

    def setup() -> HardCapped:
        hard = Plan.objects.create(
            slug=f"hard-{suffix}", name="Hard", cap_mode=CapMode.HARD, included_tokens=10
        )
        soft = Plan.objects.create(
            slug=f"soft-{suffix}", name="Soft", cap_mode=CapMode.SOFT, included_tokens=10
        )
        Tenant.objects.filter(pk=tenant.pk).update(plan=hard)
        BillingAccount.objects.create(
            tenant_id=tenant.pk,
            stripe_customer_id=f"cus_{suffix}",
            subscription_status=SubscriptionStatus.ACTIVE,
            subscription_created_at=end - timedelta(days=30),
            current_period_start=end - timedelta(days=30),
            current_period_end=end,
        )
        key = create_api_key(tenant, name="billing", scopes=[ApiKeyScope.INFERENCE]).secret
        return HardCapped(tenant, key, hard, soft, end - timezone.now())

    capped = committed(setup)
    try:
        yield capped
    finally:

        def undo() -> None:
            BillingAccount.objects.filter(tenant_id=tenant.pk).delete()
            Tenant.objects.filter(pk=tenant.pk).update(plan_id=saved_plan_id)
            Plan.objects.filter(pk__in=[capped.hard.pk, capped.soft.pk]).delete()

        committed(undo)


def test_a_hard_cap_refuses_with_retry_after_until_the_stripe_period_ends(hard_capped: HardCapped) -> None:
    api_key = find_usable_api_key(hard_capped.key)  # as the gateway loads it
    assert api_key is not None

    async def admit() -> tuple[bool, str | None, int | None]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            admission = await Limiter(client).admit(
                tenant_id=api_key.tenant_id,
                key_id=api_key.pk,
                limits=limits_for(api_key, api_key.tenant.plan),
                estimated_tokens=11,
                estimated_usd_micros=0,
                period=current_period(),
            )
        finally:
            await client.aclose()
        return admission.allowed, admission.reason, admission.retry_after_seconds

    allowed, reason, retry_after = asyncio.run(admit())

    assert (allowed, reason) == (False, "tenant_token_budget")
    assert retry_after is not None
    assert (
        hard_capped.period_end.total_seconds() - 5
        <= retry_after
        <= hard_capped.period_end.total_seconds() + 1
    )


def ask(gateway: str, key: str) -> httpx.Response:
    return httpx.post(f"{gateway}/chat/completions", json=chat_body("Hi"), headers=bearer(key), timeout=30)


def ask_over_a_socket(gateway: str, key: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), bearer(key)) as connection:
            await connection.send(orjson.dumps(chat_body("Hi")).decode())
            return (await read_all(connection))[-1]

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_the_live_gateway_refuses_a_hard_capped_tenant_until_the_period_ends_and_a_plan_change_frees_it(
    gateway: str, hard_capped: HardCapped
) -> None:
    period_end = hard_capped.period_end.total_seconds()

    refused = ask(gateway, hard_capped.key)
    over_a_socket = ask_over_a_socket(gateway, hard_capped.key)

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "tenant_token_budget"
    assert period_end - 5 <= int(refused.headers["retry-after"]) <= period_end + 1
    assert (over_a_socket["type"], over_a_socket["status"]) == ("error", 429)
    assert over_a_socket["error"]["code"] == "tenant_token_budget"
    assert period_end - 5 <= over_a_socket["retry_after"] <= period_end + 1

    committed(lambda: move_to_soft(hard_capped))
    deadline = time.monotonic() + 3  # well before the key cache's own expiry
    while (answer := ask(gateway, hard_capped.key)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text


def move_to_soft(capped: HardCapped) -> None:
    Tenant.objects.filter(pk=capped.tenant.pk).update(plan=capped.soft)


def edit_plan_in_place(capped: HardCapped) -> None:
    Plan.objects.filter(pk=capped.hard.pk).update(cap_mode=CapMode.SOFT)


def save_plan(capped: HardCapped) -> None:  # as the admin does
    plan = Plan.objects.get(pk=capped.hard.pk)
    plan.cap_mode = CapMode.SOFT
    plan.save()


def end_subscription(capped: HardCapped) -> None:  # as a webhook's adopt does
    account = BillingAccount.objects.get(tenant_id=capped.tenant.pk)
    account.subscription_status = SubscriptionStatus.CANCELED
    account.save(update_fields=["subscription_status", "updated_at"])


def update_subscription(capped: HardCapped) -> None:
    BillingAccount.objects.filter(tenant_id=capped.tenant.pk).update(
        subscription_status=SubscriptionStatus.CANCELED
    )


def soft_or_ended(api_key: ApiKey) -> bool:
    plan = api_key.tenant.plan
    account = getattr(api_key.tenant, "billing_account", None)
    assert plan is not None
    return plan.cap_mode == CapMode.SOFT or account is None or not account.is_live


@pytest.mark.parametrize(
    "change", [move_to_soft, edit_plan_in_place, save_plan, end_subscription, update_subscription]
)
def test_a_plan_or_billing_change_reaches_the_gateways_key_cache_at_once(
    hard_capped: HardCapped, change: Callable[[HardCapped], None]
) -> None:
    """No caller announces anything: the models' writes do (tenants/gateway_cache.py)."""

    async def seen() -> tuple[bool, bool, float]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = ApiKeyCache(client)
        try:
            assert await cache.resolve(hard_capped.key) is not None
            await asyncio.sleep(0.2)  # the revocation listener subscribes, which empties the cache
            before = await cache.resolve(hard_capped.key)  # cached from here on
            assert before is not None
            changed_at = time.monotonic()
            await asyncio.to_thread(committed, lambda: change(hard_capped))
            while True:
                after = await cache.resolve(hard_capped.key)
                assert after is not None
                if soft_or_ended(after) or time.monotonic() - changed_at > 3:
                    return soft_or_ended(before), soft_or_ended(after), time.monotonic() - changed_at
                await asyncio.sleep(0.05)
        finally:
            await stop_listening(cache)
            await client.aclose()

    before, after, elapsed = asyncio.run(seen())

    assert (before, after) == (False, True)
    assert elapsed < 3 < KEY_CACHE_SECONDS  # not left to the cache's expiry


async def stop_listening(cache: ApiKeyCache) -> None:
    """Cancel the cache's revocation listener while it waits on Redis (where a
    cancellation ends it), before its client closes."""
    listener = cache._listener
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


def test_only_loaded_billing_accounts_give_a_period(hard_capped: HardCapped) -> None:
    """limits_for never queries (the gateway calls it in its event loop): a key
    loaded without its tenant's billing account counts in the calendar month."""
    bare = ApiKey.objects.select_related("tenant").get(prefix=hard_capped.key.split("_")[1])
    loaded = find_usable_api_key(hard_capped.key)
    assert loaded is not None

    assert limits_for(bare, bare.tenant.plan).period is None
    assert (limits_for(loaded, loaded.tenant.plan).period or "").startswith("p")


def test_agent_runs_and_websocket_chats_load_keys_in_the_billing_period(hard_capped: HardCapped) -> None:
    """Agent runs and stream tokens find their key by id: with the same billing
    account, so they count in the billing period as /v1 does."""
    loaded = find_usable_api_key(hard_capped.key)
    assert loaded is not None
    by_id = usable_api_key_by_id(loaded.pk)
    assert by_id is not None

    assert limits_for(by_id, by_id.tenant.plan).period == limits_for(loaded, loaded.tenant.plan).period
    assert usable_api_key_by_id(loaded.pk, tenant_id=loaded.tenant_id + 1) is None


def test_a_hard_cap_on_requests_refuses_past_the_included_requests(hard_capped: HardCapped) -> None:
    committed(
        lambda: Plan.objects.filter(pk=hard_capped.hard.pk).update(included_tokens=10**6, included_requests=2)
    )
    api_key = find_usable_api_key(hard_capped.key)
    assert api_key is not None

    async def admit_three() -> list[tuple[bool, str | None, int | None]]:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        limiter = Limiter(client)
        outcomes = []
        try:
            for _ in range(3):
                admission = await limiter.admit(
                    tenant_id=api_key.tenant_id,
                    key_id=api_key.pk,
                    limits=limits_for(api_key, api_key.tenant.plan),
                    estimated_tokens=1,
                    estimated_usd_micros=0,
                    period=current_period(),
                )
                outcomes.append((admission.allowed, admission.reason, admission.retry_after_seconds))
        finally:
            await client.aclose()
        return outcomes

    first, second, third = asyncio.run(admit_three())

    assert (first, second) == ((True, None, None), (True, None, None))
    assert third[:2] == (False, "tenant_request_budget")
    assert third[2] is not None
    assert (
        hard_capped.period_end.total_seconds() - 5 <= third[2] <= hard_capped.period_end.total_seconds() + 1
    )
