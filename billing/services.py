"""Writes of billing: a tenant's Stripe customer, its Checkout and Customer
Portal sessions, and telling the gateway that a tenant's limits changed."""

from __future__ import annotations

from typing import Any

import stripe
from django.db import transaction

from billing.models import BillingAccount, Plan
from billing.models.stripe import LIVE_STATUSES
from billing.stripe_api import stripe_client
from tenants.models import Tenant


class BillingError(Exception):
    """A billing action that cannot be done; the message is one line for the user."""


def account_of(tenant: Tenant) -> BillingAccount:
    account, _ = BillingAccount.objects.get_or_create(tenant=tenant)
    return account


def ensure_stripe_customer(tenant: Tenant, client: stripe.StripeClient) -> str:
    """The tenant's one Stripe customer, created on first use.

    The idempotency key makes a concurrent or retried creation return the same
    customer, and the conditional update keeps the first id ever stored.
    """
    account = account_of(tenant)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer = client.v1.customers.create(
        params={"name": tenant.name, "metadata": {"tenant_id": str(tenant.pk), "tenant_slug": tenant.slug}},
        options={"idempotency_key": f"customer-of-tenant-{tenant.pk}"},
    )
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=customer.id
    )
    account.refresh_from_db(fields=["stripe_customer_id"])
    if account.stripe_customer_id is None:
        raise BillingError("The Stripe customer could not be recorded.")
    return account.stripe_customer_id


def create_checkout_session(tenant: Tenant, plan: Plan, success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout session subscribing the tenant to `plan`; returns its URL.

    Raises BillingError when the plan is not sold online or the tenant already
    has a live subscription (ours, or Stripe's whose webhook is not applied yet);
    the customer's other open Checkout sessions are expired, so that only one can
    be paid. StripeNotConfiguredError offline, and stripe.StripeError when Stripe
    refuses or does not answer.
    """
    if not plan.stripe_price_id:
        raise BillingError(f"The {plan.name} plan cannot be bought online.")
    if account_of(tenant).is_live:
        # A second subscription would bill twice; plan changes modify the one there is.
        raise BillingError(ALREADY_SUBSCRIBED)
    client = stripe_client()
    customer = ensure_stripe_customer(tenant, client)
    with transaction.atomic():
        # One Checkout at a time per tenant (two tabs, a double click): the account's row.
        BillingAccount.objects.select_for_update().get(tenant=tenant)
        if subscribed_in_stripe(client, customer):  # paid a moment ago, its webhook not applied yet
            raise BillingError(ALREADY_SUBSCRIBED)
        # Another tab's Checkout, still open, could be paid too: a second subscription.
        for open_session in client.v1.checkout.sessions.list(
            params={"customer": customer, "status": "open", "limit": 100}
        ).data:
            client.v1.checkout.sessions.expire(open_session.id)
        return checkout_url(client, tenant, plan, customer, success_url, cancel_url)


ALREADY_SUBSCRIBED = "You already have a subscription: switch plans with the plan's button."


def subscribed_in_stripe(client: stripe.StripeClient, customer: str) -> bool:
    """Whether Stripe has a live subscription of the customer (canceled ones are not listed)."""
    listed = client.v1.subscriptions.list(params={"customer": customer, "limit": 100}).data
    return any(subscription.status in LIVE_STATUSES for subscription in listed)


def checkout_url(
    client: stripe.StripeClient, tenant: Tenant, plan: Plan, customer: str, success_url: str, cancel_url: str
) -> str:
    line_items: list[dict[str, object]] = [{"price": plan.stripe_price_id, "quantity": 1}]
    if plan.stripe_metered_price_id:
        line_items.append({"price": plan.stripe_metered_price_id})
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer,
        "client_reference_id": str(tenant.pk),
        "line_items": line_items,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "subscription_data": {"metadata": {"tenant_id": str(tenant.pk)}},
    }
    session = client.v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]
    if not session.url:
        raise BillingError("Stripe returned no Checkout URL.")
    return session.url


def create_portal_session(tenant: Tenant, return_url: str) -> str:
    """A Customer Portal session (payment methods, invoices and cancellation;
    plan changes are billing/plan_changes.py's); returns its URL. Raises like create_checkout_session."""
    client = stripe_client()
    session = client.v1.billing_portal.sessions.create(
        params={"customer": ensure_stripe_customer(tenant, client), "return_url": return_url}
    )
    return session.url
