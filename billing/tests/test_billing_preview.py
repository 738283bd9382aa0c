"""The invoice preview from our own ledger, hard caps in the limits, and the
dashboard's billing page (offline and with Stripe)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.limits import billing_period, limits_for, period_end
from billing.models import BillingAccount, CapMode, Plan
from billing.selectors import QuotaState, invoice_preview
from billing.stripe_api import stripe_client
from billing.tests.factories import (
    BillingAccountFactory,
    PlanFactory,
    UsageEventFactory,
    customer_paying_by_card,
)
from billing.tests.test_stripe_webhooks import stripe_plan
from tenants.models import ApiKey, Tenant
from testing.stripe_server import StripeStandIn
from testing.tenants import TenantFixture

PREVIEW_URL = "/api/v1/billing/preview"
NOW = datetime(2026, 11, 16, tzinfo=UTC)  # halfway through a 30-day period from Nov 1


def on_plan(tenant: TenantFixture, chosen: Plan) -> Tenant:
    """The tenant, freshly read, on `chosen` (the fixture's shared object stays as it was)."""
    Tenant.objects.filter(pk=tenant.tenant.pk).update(plan=chosen)
    return Tenant.objects.get(pk=tenant.tenant.pk)


def use(tenant: TenantFixture, tokens: int, at: datetime) -> None:
    UsageEventFactory.create(tenant=tenant.tenant, prompt_tokens=tokens, created_at=at)


def subscribe(tenant: TenantFixture, start: datetime, end: datetime) -> None:
    BillingAccountFactory.create(
        tenant_id=tenant.tenant.pk, current_period_start=start, current_period_end=end
    )


def test_the_preview_bills_overage_past_the_included_tokens_and_projects_the_period(
    tenant: TenantFixture,
) -> None:
    fresh = on_plan(tenant, PlanFactory.create())
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subscribe(tenant, start, start + timedelta(days=30))
    use(tenant, 1_250_000, NOW - timedelta(days=1))
    use(tenant, 250_000, NOW - timedelta(hours=1))
    use(tenant, 999, start - timedelta(seconds=1))  # the period before

    preview = invoice_preview(fresh, now=NOW)

    assert (preview.period.starts_at, preview.period.ends_at, preview.period.source) == (
        start,
        start + timedelta(days=30),
        "stripe",
    )
    assert (preview.used_tokens, preview.used_requests, preview.overage_tokens) == (1_500_000, 2, 500_000)
    assert (preview.overage_usd, preview.total_usd) == (Decimal("1.00"), Decimal("50.00"))
    assert preview.projected_tokens == 3_000_000
    assert (preview.projected_overage_usd, preview.projected_total_usd) == (Decimal("4.00"), Decimal("53.00"))
    assert (preview.quota_state, preview.tokens_remaining) == (QuotaState.OVERAGE, None)


def test_the_preview_api_answers_for_the_keys_tenant_only(
    tenant: TenantFixture, other_tenant: TenantFixture, api_client: Any
) -> None:
    on_plan(tenant, PlanFactory.create(cap_mode=CapMode.HARD, included_tokens=1_000))
    use(tenant, 800, timezone.now())
    use(other_tenant, 5_000, timezone.now())

    response = api_client.get(PREVIEW_URL)

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("object", "used_tokens", "included_tokens", "quota_state")} == {
        "object": "billing.preview",
        "used_tokens": 800,
        "included_tokens": 1_000,
        "quota_state": "nearing",
    }
    assert (body["cap_mode"], body["tokens_remaining"], body["overage"], body["total"]) == (
        "hard",
        200,
        "0.00",
        "49.00",
    )
    assert body["period"]["source"] == "calendar"


def test_a_hard_cap_plan_caps_the_tenants_tokens_at_the_included_ones(tenant: TenantFixture) -> None:
    hard = PlanFactory.create(cap_mode=CapMode.HARD, included_tokens=1_000, monthly_token_budget=5_000)
    soft = PlanFactory.create(cap_mode=CapMode.SOFT, included_tokens=1_000, monthly_token_budget=5_000)

    assert limits_for(ApiKey(), hard).tenant_monthly_tokens == 1_000
    assert limits_for(ApiKey(), soft).tenant_monthly_tokens == 5_000


def test_a_live_subscription_makes_its_billing_period_the_budget_period(tenant: TenantFixture) -> None:
    start = timezone.now() - timedelta(days=3)
    end = start + timedelta(days=30)
    subscribe(tenant, start, end)
    key = ApiKey.objects.select_related("tenant", "tenant__plan", "tenant__billing_account").get(
        pk=tenant.provisioned.issued_key.api_key.pk
    )

    period = limits_for(key, key.tenant.plan).period

    assert period == f"p{int(start.timestamp())}-{int(end.timestamp())}"
    assert period_end(period) == end.replace(microsecond=0)


def test_a_billing_period_whose_renewal_is_late_rolls_forward_by_its_length() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    end = datetime(2026, 10, 31, tzinfo=UTC)

    assert billing_period(start, end, now=datetime(2026, 11, 5, tzinfo=UTC)) == (
        f"p{int(end.timestamp())}-{int((end + timedelta(days=30)).timestamp())}"
    )


def test_the_billing_page_offline_says_stripe_is_not_configured(tenant: TenantFixture) -> None:
    response = tenant.web_client().get("/dashboard/billing/")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="stripe-not-configured"' in content
    assert 'id="billing-total"' in content


def test_the_billing_page_sends_owners_to_checkout_and_the_portal(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    paid = PlanFactory.create(stripe_price_id="price_test_paid", stripe_metered_price_id="price_test_tokens")
    browser = tenant.web_client()

    page = browser.get("/dashboard/billing/")
    checkout = browser.post("/dashboard/billing/checkout/", {"plan": paid.slug})
    portal = browser.post("/dashboard/billing/portal/")

    assert f'value="{paid.slug}"' in page.content.decode()
    session = stripe.checkout_sessions[-1]
    assert checkout.status_code == 302
    assert checkout["Location"] == session["url"]
    account = BillingAccount.objects.get(tenant=tenant.tenant)
    assert session["params"]["customer"] == account.stripe_customer_id
    assert session["params"]["mode"] == "subscription"
    assert session["params"]["client_reference_id"] == str(tenant.tenant.pk)
    assert [item["price"] for item in session["params"]["line_items"]] == [
        "price_test_paid",
        "price_test_tokens",
    ]
    assert portal.status_code == 302
    assert portal["Location"] == stripe.portal_sessions[-1]["url"]
    assert stripe.portal_sessions[-1]["customer"] == account.stripe_customer_id


def test_checkout_of_a_plan_not_sold_online_is_a_404(tenant: TenantFixture, stripe: StripeStandIn) -> None:
    unsold = PlanFactory.create()
    before = len(stripe.checkout_sessions)

    response = tenant.web_client().post("/dashboard/billing/checkout/", {"plan": unsold.slug})

    assert response.status_code == 404
    assert len(stripe.checkout_sessions) == before


@pytest.mark.parametrize("slug", ["pro\x00", "", "no such plan"])
def test_checkout_of_a_name_no_plan_has_is_a_404(
    tenant: TenantFixture, stripe: StripeStandIn, slug: str
) -> None:
    response = tenant.web_client().post("/dashboard/billing/checkout/", {"plan": slug})

    assert response.status_code == 404


def test_checkout_is_refused_while_a_subscription_is_live(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    paid = PlanFactory.create(stripe_price_id="price_test_paid")
    subscribe(tenant, timezone.now() - timedelta(days=1), timezone.now() + timedelta(days=29))
    before = len(stripe.checkout_sessions)
    browser = tenant.web_client()

    page = browser.get("/dashboard/billing/")
    response = browser.post("/dashboard/billing/checkout/", {"plan": paid.slug}, follow=True)

    assert 'id="subscription-live"' in page.content.decode()
    assert 'action="/dashboard/billing/checkout/"' not in page.content.decode()
    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    assert "switch plans with the plan&#x27;s button" in response.content.decode()
    assert len(stripe.checkout_sessions) == before


def test_requests_the_limits_refused_are_not_counted_and_the_request_allowance_can_block(
    tenant: TenantFixture,
) -> None:
    fresh = on_plan(
        tenant, PlanFactory.create(cap_mode=CapMode.HARD, included_tokens=10**6, included_requests=2)
    )
    use(tenant, 10, timezone.now())
    use(tenant, 10, timezone.now())
    UsageEventFactory.create(tenant=tenant.tenant, model="", status=429, error_type="tenant_request_budget")

    preview = invoice_preview(fresh)

    assert (preview.used_requests, preview.included_requests, preview.used_tokens) == (2, 2, 20)
    assert preview.quota_state == QuotaState.BLOCKED


def test_a_second_checkout_expires_the_first_so_only_one_subscription_can_be_bought(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    """Two tabs, each sent to Checkout before either paid: paying in both would make two
    subscriptions billing the one workspace (and its meter) twice."""
    paid = PlanFactory.create(stripe_price_id="price_test_paid")
    browser = tenant.web_client()

    first = browser.post("/dashboard/billing/checkout/", {"plan": paid.slug})
    second = browser.post("/dashboard/billing/checkout/", {"plan": paid.slug})

    assert first.status_code == second.status_code == 302
    sessions = {session["url"]: session["status"] for session in stripe.checkout_sessions}
    assert (sessions[first["Location"]], sessions[second["Location"]]) == ("expired", "open")


def test_checkout_is_refused_when_stripe_already_has_a_subscription_our_webhook_has_not_applied(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    """Paid in one tab a moment ago, its webhook not applied yet: the other tab's
    Checkout would start a second subscription."""
    client = stripe_client()
    paid = PlanFactory.create(stripe_price_id=f"price_paid_{uuid.uuid4().hex[:8]}")
    stripe_plan(paid.stripe_price_id, 4900)
    customer = customer_paying_by_card(client, "paid in another tab")
    client.v1.subscriptions.create(params={"customer": customer, "items": [{"plan": paid.stripe_price_id}]})
    BillingAccount.objects.create(tenant=tenant.tenant, stripe_customer_id=customer)
    before = len(stripe.checkout_sessions)

    response = tenant.web_client().post("/dashboard/billing/checkout/", {"plan": paid.slug}, follow=True)

    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    assert "You already have a subscription" in response.content.decode()
    assert len(stripe.checkout_sessions) == before
