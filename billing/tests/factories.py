"""Plans, billing accounts (the mirror of a Stripe subscription) and usage ledger rows."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from factory.declarations import LazyAttribute, LazyFunction, Sequence
from factory.django import DjangoModelFactory
from stripe import StripeClient

from billing.models import BillingAccount, CapMode, Plan, SubscriptionStatus, UsageEvent

BILLING_PERIOD = timedelta(days=30)


class PlanFactory(DjangoModelFactory[Plan]):
    """$49 a period for a million tokens and 1,000 requests; a soft cap, $2 per million
    tokens past them; not sold through Stripe (no prices)."""

    class Meta:
        model = Plan

    slug = Sequence(lambda n: f"plan-{n}")
    name = LazyAttribute(lambda plan: plan.slug.replace("-", " ").title())
    monthly_price_usd = Decimal("49.00")
    included_tokens = 1_000_000
    included_requests = 1_000
    cap_mode = CapMode.SOFT
    overage_usd_per_million_tokens = Decimal("2.0000")


class BillingAccountFactory(DjangoModelFactory[BillingAccount]):
    """A tenant's Stripe customer with an active subscription whose period starts at
    `current_period_start` (now by default) and lasts 30 days: pass `tenant_id` (an
    instance would cache the account on a shared Tenant object past the test)."""

    class Meta:
        model = BillingAccount

    stripe_customer_id = LazyFunction(lambda: f"cus_{uuid.uuid4().hex[:12]}")
    subscription_status = SubscriptionStatus.ACTIVE
    current_period_start = LazyFunction(timezone.now)
    current_period_end = LazyAttribute(lambda account: account.current_period_start + BILLING_PERIOD)
    subscription_created_at = LazyAttribute(lambda account: account.current_period_start)


class UsageEventFactory(DjangoModelFactory[UsageEvent]):
    """A flushed /v1 request in the usage ledger, served now with status 200: pass `tenant`."""

    class Meta:
        model = UsageEvent

    request_id = LazyFunction(lambda: f"req_{uuid.uuid4().hex}")
    model = "sim-small"
    status = 200
    created_at = LazyFunction(timezone.now)


# Test cards (localstripe's, as Stripe's): one that pays, one that attaches but declines every charge.
PAYING_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"


def customer_paying_by_card(client: StripeClient, name: str) -> str:
    """A Stripe customer (localstripe's) whose default payment method is a test card,
    so a subscription can be created and changed without a Checkout page."""
    customer = client.v1.customers.create(params={"name": name})
    pay_by_card(client, customer.id, PAYING_CARD)
    return str(customer.id)


def pay_by_card(client: StripeClient, customer_id: str, number: str) -> None:
    """The customer's default payment method from now on: a new card of that number."""
    card = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"}}
    )
    client.v1.payment_methods.attach(card.id, params={"customer": customer_id})
    client.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": card.id}})
