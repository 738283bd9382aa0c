"""Billing as the gateway enforces it, over real servers: a hard-cap plan
refuses with 429 until the Stripe billing period ends, and a plan change
reaches every gateway process at once, not when its key cache expires."""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

import httpx
from django.utils import timezone

from aiaas.testing.database import committed
from aiaas.testing.tenants import TenantFixture
from billing.models import BillingAccount, CapMode, Plan, SubscriptionStatus
from billing.services import refresh_gateway_limits
from routing.gateway.auth import KEY_CACHE_SECONDS
from routing.tests.conftest import gateway, platform_url, registry, simulator_url  # noqa: F401 - fixtures
from tenants.models import ApiKeyScope, Tenant
from tenants.services import create_api_key

BODY = {"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}


def post(gateway_url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway_url}/chat/completions", json=BODY, timeout=20, headers={"authorization": f"Bearer {key}"}
    )


def test_a_hard_cap_refuses_until_the_period_ends_and_an_upgrade_applies_at_once(
    gateway: str,  # noqa: F811 - the fixture
    serving_tenant: TenantFixture,
) -> None:
    tenant = serving_tenant.tenant
    # A period of its own (a random end), so no earlier run's counters apply.
    end = (timezone.now() + timedelta(hours=1, seconds=random.randint(0, 600))).replace(microsecond=0)
    start = end - timedelta(days=30)
    suffix = uuid.uuid4().hex[:8]
    hard = committed(
        lambda: Plan.objects.create(
            slug=f"hard-{suffix}", name="Hard", cap_mode=CapMode.HARD, included_tokens=10
        )
    )
    soft = committed(
        lambda: Plan.objects.create(
            slug=f"soft-{suffix}", name="Soft", cap_mode=CapMode.SOFT, included_tokens=10
        )
    )
    saved_plan_id = tenant.plan_id

    def subscribe() -> str:
        Tenant.objects.filter(pk=tenant.pk).update(plan=hard)
        BillingAccount.objects.create(
            tenant_id=tenant.pk,
            stripe_customer_id=f"cus_{suffix}",
            subscription_status=SubscriptionStatus.ACTIVE,
            subscription_created_at=start,
            current_period_start=start,
            current_period_end=end,
        )
        return create_api_key(tenant, name="billing", scopes=[ApiKeyScope.INFERENCE]).secret

    key = committed(subscribe)
    try:
        refused = post(gateway, key)

        assert refused.status_code == 429
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "tenant_token_budget")
        until_period_end = (end - timezone.now()).total_seconds()
        assert until_period_end - 5 <= int(refused.headers["retry-after"]) <= until_period_end + 1

        committed(lambda: Tenant.objects.filter(pk=tenant.pk).update(plan=soft))
        changed_at = time.monotonic()
        refresh_gateway_limits([tenant.pk])
        while (answer := post(gateway, key)).status_code == 429 and time.monotonic() - changed_at < 3:
            time.sleep(0.1)
        assert answer.status_code == 200
        # Well before the gateway's key cache would have expired by itself.
        assert time.monotonic() - changed_at < 3 < KEY_CACHE_SECONDS
    finally:

        def undo() -> None:
            BillingAccount.objects.filter(tenant=tenant).delete()
            Tenant.objects.filter(pk=tenant.pk).update(plan_id=saved_plan_id)
            Plan.objects.filter(pk__in=[hard.pk, soft.pk]).delete()

        committed(undo)
