"""Stripe events drive each tenant's subscription, plan and billing period.

Processing never trusts the order events arrive in, nor the snapshot inside an
event: it re-reads the subscription from Stripe while holding the tenant's
billing account row locked, so the last write is always of the latest state.
Processing an event again changes nothing, so delivering it once, five times,
concurrently or out of order ends in the same state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import BillingAccount, EventStatus, Plan, StripeEvent, SubscriptionStatus
from billing.models.stripe import LIVE_STATUSES
from billing.selectors import default_plan
from billing.stripe_api import stripe_client
from tenants.models import Tenant

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
        "customer.subscription.trial_will_end",
    }
)
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"})
CHECKOUT_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
ENDED_STATUSES = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED})


@dataclass(frozen=True)
class Outcome:
    status: EventStatus
    detail: str = ""


def process_event(event_pk: int) -> Outcome | None:
    """Apply a stored event, once it is not done yet; returns what happened
    (None when it was already done, or is gone). Stripe errors propagate, for the task to retry."""
    event = StripeEvent.objects.filter(pk=event_pk).first()
    if event is None:
        logger.warning("stripe event %s is gone; nothing to process", event_pk)
        return None
    if event.status in (EventStatus.PROCESSED, EventStatus.IGNORED):
        return None
    outcome = apply_event(event.payload)
    StripeEvent.objects.filter(pk=event.pk, status__in=[EventStatus.RECEIVED, EventStatus.FAILED]).update(
        status=outcome.status, detail=outcome.detail, processed_at=timezone.now()
    )
    return outcome


def unapplied_events(older_than: datetime) -> list[int]:
    """Stored events still waiting (or failed) since before `older_than`, within Stripe's
    30-day event retention, oldest first (at most 500 a sweep)."""
    recent = older_than - timedelta(days=30)
    return list(
        StripeEvent.objects.filter(
            status__in=[EventStatus.RECEIVED, EventStatus.FAILED],
            received_at__lt=older_than,
            received_at__gte=recent,
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:500]
    )


def mark_failed(event_pk: int, detail: str) -> None:
    StripeEvent.objects.filter(pk=event_pk, status=EventStatus.RECEIVED).update(
        status=EventStatus.FAILED, detail=detail[:2000], processed_at=timezone.now()
    )


def apply_event(payload: dict[str, Any]) -> Outcome:
    event_type = payload["type"]
    obj = payload["data"]["object"]
    subscription_id = subscription_id_of(event_type, obj)
    if subscription_id is None:
        return Outcome(EventStatus.IGNORED, f"{event_type} does not concern a subscription")
    account = BillingAccount.objects.filter(stripe_customer_id=object_id(obj.get("customer"))).first()
    if account is None:
        return Outcome(EventStatus.IGNORED, "unknown customer")
    return sync_subscription(account, subscription_id)


def subscription_id_of(event_type: str, obj: dict[str, Any]) -> str | None:
    if event_type in SUBSCRIPTION_EVENTS:
        return object_id(obj.get("id"))
    if event_type in CHECKOUT_EVENTS:
        return object_id(obj.get("subscription"))
    if event_type in INVOICE_EVENTS:
        # Since API 2025-03-31 an invoice names its subscription under parent.
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        return object_id(details.get("subscription") or obj.get("subscription"))
    return None


def object_id(value: Any) -> str | None:
    """An id Stripe sends either as a string or as an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def sync_subscription(account: BillingAccount, subscription_id: str) -> Outcome:
    """Read the subscription from Stripe and make the account, and the tenant's
    plan, match it. The read happens under the account's row lock, so two
    events of one tenant processed at once apply one after the other, each
    with what Stripe says at that moment."""
    client = stripe_client()
    with transaction.atomic():
        locked = BillingAccount.objects.select_for_update().get(pk=account.pk)
        subscription = client.v1.subscriptions.retrieve(subscription_id).to_dict()
        if object_id(subscription.get("customer")) != locked.stripe_customer_id:
            return Outcome(EventStatus.IGNORED, "the subscription belongs to another customer")
        if not supersedes(subscription, locked):
            return Outcome(EventStatus.IGNORED, "an older subscription than the tenant's current one")
        detail = adopt(locked, subscription)
    return Outcome(EventStatus.PROCESSED, detail)


def supersedes(subscription: dict[str, Any], account: BillingAccount) -> bool:
    """Whether `subscription` is the one the account should follow: its current
    one, or a newer one; an ended or older one never replaces a live one."""
    if account.stripe_subscription_id in ("", subscription["id"]):
        return True
    if subscription["status"] in ENDED_STATUSES:
        return False
    created, current = timestamp(subscription.get("created")), account.subscription_created_at
    return not (account.is_live and current is not None and (created is None or created < current))


def adopt(account: BillingAccount, subscription: dict[str, Any]) -> str:
    """Copy the subscription onto the account and set the tenant's plan; returns a note."""
    status = SubscriptionStatus(subscription["status"])  # the task marks an unknown one failed
    start, end = period_of(subscription)
    ended = timestamp(subscription.get("ended_at"))
    if status in ENDED_STATUSES and ended is not None and end is not None and ended < end:
        # Cancelled mid-period: Stripe keeps the period's end, but what the tenant uses
        # from now on (on the default plan) is not this subscription's to meter.
        end = ended
    account.stripe_subscription_id = subscription["id"]
    account.subscription_status = status
    account.subscription_created_at = timestamp(subscription.get("created"))
    account.current_period_start, account.current_period_end = start, end
    account.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
    # Read after any change we sent (which held this row's lock): Stripe's word on it.
    account.requested_plan, account.plan_requested_at = None, None
    account.save(
        update_fields=[
            "stripe_subscription_id",
            "subscription_status",
            "subscription_created_at",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "requested_plan",
            "plan_requested_at",
            "updated_at",
        ]
    )
    plan, note = plan_for(subscription, status)
    if plan is not None:
        Tenant.objects.filter(pk=account.tenant_id).exclude(plan=plan).update(plan=plan)
    return note


def plan_for(subscription: dict[str, Any], status: SubscriptionStatus) -> tuple[Plan | None, str]:
    """The plan a subscription in `status` gives: the one whose flat Stripe price it
    bills while it is live (plans may share a metered price, so that decides only
    when no flat price matches), the default plan once it is not."""
    if status not in LIVE_STATUSES:
        return default_plan(), f"{status}: back on the default plan"
    prices = price_ids_of(subscription)
    by_price = Plan.objects.order_by("-monthly_price_usd")
    plan = (
        by_price.filter(stripe_price_id__in=prices).first()
        or by_price.filter(stripe_metered_price_id__in=prices).first()
    )
    if plan is None:
        logger.warning("subscription %s bills no price of a plan: %s", subscription["id"], prices)
        return None, f"no plan has the prices {sorted(prices)}; the plan is unchanged"
    return plan, ""


def price_ids_of(subscription: dict[str, Any]) -> set[str]:
    """Price ids of the items (legacy plan ids too: a plan's id is a price id)."""
    ids: set[str] = set()
    for item in (subscription.get("items") or {}).get("data") or []:
        for key in ("price", "plan"):
            price = object_id(item.get(key))
            if price:
                ids.add(price)
    return ids


def period_of(subscription: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The current period: on the items since API 2025-03-31, on the subscription before."""
    items = (subscription.get("items") or {}).get("data") or []
    for source in [*items, subscription]:
        start, end = source.get("current_period_start"), source.get("current_period_end")
        if isinstance(start, int) and isinstance(end, int) and start < end:
            return timestamp(start), timestamp(end)
    return None, None


def timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None
