"""How a stream token's key is loaded: as the gateway loads a Bearer key."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from billing.limits import limits_for
from billing.models import BillingAccount, SubscriptionStatus
from tenants.models import ApiKeyScope
from tenants.selectors import usable_api_key_by_id as usable_api_key
from tenants.services import create_api_key
from testing.tenants import TenantFixture


def test_a_token_key_carries_its_tenants_billing_period(serving_tenant: TenantFixture, db: None) -> None:
    """billing.limits reads the Stripe period only from a loaded billing account:
    without it, a token's socket would count budgets in the calendar month."""
    tenant = serving_tenant.tenant
    end = timezone.now().replace(microsecond=0) + timedelta(days=3)
    BillingAccount.objects.create(  # in the test's transaction, rolled back
        tenant_id=tenant.pk,
        stripe_customer_id=f"cus_{uuid.uuid4().hex[:12]}",
        subscription_status=SubscriptionStatus.ACTIVE,
        subscription_created_at=end - timedelta(days=30),
        current_period_start=end - timedelta(days=30),
        current_period_end=end,
    )
    issued = create_api_key(tenant, name="ws-billing", scopes=[ApiKeyScope.INFERENCE])

    api_key = usable_api_key(issued.api_key.pk, tenant.pk)

    assert api_key is not None
    assert (limits_for(api_key, api_key.tenant.plan).period or "").startswith("p")
