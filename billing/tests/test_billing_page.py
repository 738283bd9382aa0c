"""The billing page's plan comparison: every plan's limits and price, the reason
whenever one cannot be bought, and a warning up front when Stripe does not answer
(checked within a bounded time, the verdict cached briefly)."""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import pytest
from pytest_django import Settings

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from billing.models import BillingAccount
from billing.selectors import PlanAction, Unavailable
from billing.stripe_api import HEALTH_TIMEOUT_SECONDS, StripeHealth, stripe_health
from billing.tests.factories import BillingAccountFactory, PlanFactory
from testing.stripe_server import StripeStandIn
from testing.tenants import TenantFixture

PAGE = "/dashboard/billing/"


def offers_by_slug(response: object) -> dict[str, tuple[bool, Unavailable | None]]:
    return {o.plan.slug: (o.is_current, o.unavailable) for o in response.context["offers"]}  # type: ignore[attr-defined]


def test_plans_are_compared_with_their_limits_and_prices(tenant: TenantFixture) -> None:
    PlanFactory.create(
        slug="team",
        name="Team",
        monthly_price_usd=Decimal("49"),
        included_tokens=20_000_000,
        key_requests_per_minute=600,
        overage_usd_per_million_tokens=Decimal("1.5"),
        stripe_price_id="price_team",
    )

    content = tenant.web_client().get(PAGE).content.decode()

    card = content[content.index('id="plan-team"') :][:1500]
    assert "<strong>$49.00</strong>" in card
    assert "20,000,000 tokens included" in card
    assert "Then $1.50 per million tokens" in card
    assert "600 requests and" in card


def test_offline_every_plan_says_stripe_is_not_configured(tenant: TenantFixture) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team", monthly_price_usd=Decimal("49"))

    response = tenant.web_client().get(PAGE)

    assert offers_by_slug(response)["team"][1] == Unavailable.NOT_CONFIGURED
    content = response.content.decode()
    assert Unavailable.NOT_CONFIGURED.value in content
    assert 'id="stripe-not-configured"' in content
    assert 'id="stripe-unreachable"' not in content
    assert 'name="plan"' not in content


def test_with_stripe_each_plan_offers_checkout_or_says_why_not(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team", monthly_price_usd=Decimal("49"))
    PlanFactory.create(slug="custom", monthly_price_usd=Decimal("900"))
    PlanFactory.create(slug="hobby", monthly_price_usd=Decimal("0"))

    response = tenant.web_client().get(PAGE)
    offers = offers_by_slug(response)

    assert offers["team"] == (False, None)
    assert offers["custom"] == (False, Unavailable.NOT_SOLD_ONLINE)
    assert offers["hobby"] == (False, Unavailable.FREE)
    current = tenant.tenant.plan
    assert current is not None
    assert offers[current.slug][0] is True
    content = response.content.decode()
    assert 'name="plan" value="team"' in content
    assert 'name="plan" value="custom"' not in content


def test_a_subscribed_workspace_switches_plans_here_and_manages_payment_in_the_portal(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    PlanFactory.create(slug="custom", monthly_price_usd=Decimal("900"))
    BillingAccountFactory.create(
        tenant_id=tenant.tenant.pk, subscription_status="active", stripe_subscription_id="sub_live"
    )

    response = tenant.web_client().get(PAGE)

    actions = {o.plan.slug: (o.action, o.unavailable) for o in response.context["offers"]}
    current = tenant.tenant.plan
    assert current is not None
    assert actions["team"] == (PlanAction.SWITCH, None)
    assert actions["custom"] == (None, Unavailable.NOT_SOLD_ONLINE)
    assert actions[current.slug] == (None, Unavailable.CURRENT)
    content = response.content.decode()
    assert "Switch to Team" in content
    assert 'action="/dashboard/billing/checkout/"' not in content
    assert "Manage payment methods, invoices and cancellation" in content


def test_a_member_is_told_only_owners_and_admins_subscribe(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    member = browser_for(tenant, make_user(tenant, role=Role.MEMBER))

    response = member.get(PAGE)

    assert offers_by_slug(response)["team"][1] == Unavailable.NOT_A_MANAGER


def test_an_unreachable_stripe_is_a_warning_up_front_found_within_the_bound(
    tenant: TenantFixture, settings: Settings
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    silent = socket.socket()  # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    settings.STRIPE_SECRET_KEY = "sk_test_silent"
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        started = time.monotonic()
        response = tenant.web_client().get(PAGE)
        first = time.monotonic() - started
        started = time.monotonic()
        again = tenant.web_client().get(PAGE)
        cached = time.monotonic() - started
    finally:
        silent.close()

    assert first < HEALTH_TIMEOUT_SECONDS + 3
    assert cached < HEALTH_TIMEOUT_SECONDS
    content = response.content.decode()
    assert content.index('id="stripe-unreachable"') < content.index('id="billing-plan"')
    assert offers_by_slug(response)["team"][1] == Unavailable.STRIPE_DOWN
    assert offers_by_slug(again)["team"][1] == Unavailable.STRIPE_DOWN
    assert "Manage payment methods" not in content


def test_stripe_health_follows_the_configuration(stripe: StripeStandIn, settings: Settings) -> None:
    assert stripe_health() == StripeHealth.REACHABLE
    settings.STRIPE_SECRET_KEY = ""
    assert stripe_health() == StripeHealth.NOT_CONFIGURED


@pytest.mark.parametrize("role", [Role.MEMBER])
def test_another_tenants_member_cannot_see_the_page(
    tenant: TenantFixture, other_tenant: TenantFixture, role: Role
) -> None:
    outsider = browser_for(other_tenant, make_user(other_tenant, role=role))
    outsider.defaults["HTTP_HOST"] = tenant.host

    response = outsider.get(PAGE)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={PAGE}"


BILLING_WRITES = ["/dashboard/billing/checkout/", "/dashboard/billing/plan/", "/dashboard/billing/portal/"]


def stripe_calls(stripe: StripeStandIn) -> tuple[int, int, int]:
    return len(stripe.checkout_sessions), len(stripe.portal_sessions), len(stripe.subscription_updates)


@pytest.mark.parametrize("path", BILLING_WRITES)
@pytest.mark.parametrize("subscribed", [False, True])
def test_every_billing_action_refuses_a_member_and_another_tenants_owner_and_asks_stripe_nothing(
    tenant: TenantFixture, other_tenant: TenantFixture, stripe: StripeStandIn, path: str, subscribed: bool
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    if subscribed:
        BillingAccountFactory.create(tenant_id=tenant.tenant.pk, stripe_subscription_id="sub_authz")
    form = {"plan": "team", "change_id": "5f0e3f9a-8d3e-4a4e-9a53-1f2f8a1b6c11"}
    member = browser_for(tenant, make_user(tenant, role=Role.MEMBER))
    outsider = other_tenant.web_client()  # its owner
    outsider.defaults["HTTP_HOST"] = tenant.host
    before = stripe_calls(stripe)

    assert member.post(path, form).status_code == 403
    refused = outsider.post(path, form)
    assert (refused.status_code, refused["Location"]) == (302, f"/login/?next={path}")
    assert stripe_calls(stripe) == before
    assert not BillingAccount.objects.filter(tenant=tenant.tenant, requested_plan__isnull=False).exists()


def test_an_admin_may_use_the_billing_actions(tenant: TenantFixture, stripe: StripeStandIn) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    admin = browser_for(tenant, make_user(tenant, role=Role.ADMIN))
    checkouts, portals, _ = stripe_calls(stripe)

    assert admin.post("/dashboard/billing/checkout/", {"plan": "team"}).status_code == 302
    assert admin.post("/dashboard/billing/portal/").status_code == 302
    assert stripe_calls(stripe)[:2] == (checkouts + 1, portals + 1)


@pytest.mark.parametrize(
    ("status", "says"), [("past_due", "Stripe is retrying it"), ("unpaid", "stays unpaid")]
)
def test_a_failed_payment_is_said_up_front(tenant: TenantFixture, status: str, says: str) -> None:
    BillingAccount.objects.update_or_create(tenant=tenant.tenant, defaults={"subscription_status": status})

    content = tenant.web_client().get(PAGE).content.decode()
    BillingAccount.objects.filter(tenant=tenant.tenant).update(subscription_status="active")
    active = tenant.web_client().get(PAGE).content.decode()

    assert content.index('id="payment-failed"') < content.index('id="billing-plan"')
    assert says in content
    assert 'id="payment-failed"' not in active
