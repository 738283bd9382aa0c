"""A subscribed tenant changes plan in Stripe; its plan here follows Stripe's webhook.

A switch to a plan sold online swaps the subscription's prices in place (the
flat price on its item, the token meter's price on its own item, added or
removed as the plan has one), prorated and invoiced at once. A move to the
free default plan ends the subscription with its paid period; choosing the
current plan again before then undoes that. Nothing of ours changes on the
click but a note that a change is requested: the webhook re-reads the
subscription (billing/subscriptions.py) and sets the plan and limits.

One change at a time per tenant: the billing account's row stays locked from
the read of the subscription to the note, so a double click waits and is told
the change is already requested, and Stripe sees one update. The update
carries an idempotency key per rendered page and plan, so a repeated request
replays Stripe's first answer instead of changing anything twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import BillingAccount, Plan
from billing.selectors import PlanAction, Unavailable, change_to
from billing.services import BillingError
from billing.stripe_api import stripe_client
from billing.subscriptions import price_ids_of
from tenants.models import Tenant

# An upgrade is charged now for the rest of the period, a downgrade credited now to
# the customer's balance (used by the next invoices); a tenant never holds a bigger
# plan's limits on credit until the period ends. ADR 0051.
PRORATION_BEHAVIOR = "always_invoice"
# That invoice unpaid (a declined card, one that needs authentication), Stripe refuses the
# update with a 402 and changes nothing: with its default (allow_incomplete) the switch
# would stand on an unpaid invoice, the subscription past_due and still live, so the
# webhook would give the dearer plan's limits for nothing. A downgrade invoices a credit: no payment.
PAYMENT_BEHAVIOR = "error_if_incomplete"


@dataclass(frozen=True)
class PlanChange:
    action: PlanAction
    plan: Plan
    # When a move to the free plan takes effect: the end of the paid period.
    effective_at: datetime | None
    already_requested: bool = False


def change_plan(tenant: Tenant, plan: Plan, change_id: uuid.UUID) -> PlanChange:
    """Send the tenant's move to `plan` to Stripe and note it as requested.

    Raises BillingError when the tenant has no live subscription or `plan` is
    not one it can move to, StripeNotConfiguredError offline, stripe.CardError when
    the upgrade's invoice cannot be paid (Stripe changed nothing), and
    stripe.StripeError when Stripe refuses or does not answer (nothing is noted then).
    """
    client = stripe_client()
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().filter(tenant_id=tenant.pk).first()
        if account is None or not account.is_live or not account.stripe_subscription_id:
            raise BillingError("You have no subscription to change: subscribe to a plan first.")
        action = requested_action(tenant, account, plan)
        effective_at = account.current_period_end if action is PlanAction.END_AT_PERIOD_END else None
        if account.requested_plan_id == plan.pk:
            return PlanChange(action, plan, effective_at, already_requested=True)
        subscription = client.v1.subscriptions.retrieve(account.stripe_subscription_id).to_dict()
        updated = client.v1.subscriptions.update(
            account.stripe_subscription_id,
            params=update_params(action, subscription, plan),  # type: ignore[arg-type]
            options={"idempotency_key": f"tenant-{tenant.pk}:plan-change:{change_id}:{plan.pk}"},
        )
        if replayed(updated) and billed(updated.to_dict()) != billed(subscription):
            # The key's first answer describes a state the subscription has left since
            # (a page from before later changes): Stripe changed nothing this time.
            raise BillingError(STALE_PAGE)
        account.requested_plan, account.plan_requested_at = plan, timezone.now()
        account.save(update_fields=["requested_plan", "plan_requested_at", "updated_at"])
    return PlanChange(action, plan, effective_at)


STALE_PAGE = (
    "This page was out of date: nothing was changed. Reload the billing page to see your plan, "
    "then choose again."
)


def replayed(answer: Any) -> bool:
    """Whether Stripe answered with a key's kept first answer (Idempotent-Replayed)."""
    response = getattr(answer, "last_response", None)
    headers = getattr(response, "headers", None) or {}
    return any(name.lower() == "idempotent-replayed" and value == "true" for name, value in headers.items())


def billed(subscription: dict[str, Any]) -> tuple[list[str], bool]:
    """What a plan change sets: the prices billed, and whether the subscription ends with its period."""
    return sorted(price_ids_of(subscription)), bool(subscription.get("cancel_at_period_end"))


def requested_action(tenant: Tenant, account: BillingAccount, plan: Plan) -> PlanAction:
    """What moving to `plan` does, from the tenant's plan as stored now; raises BillingError."""
    current = Tenant.objects.select_related("plan").get(pk=tenant.pk).plan
    action = change_to(current, plan, ending=account.cancel_at_period_end)
    if isinstance(action, Unavailable):
        raise BillingError(action.value)
    return action


def update_params(action: PlanAction, subscription: dict[str, Any], plan: Plan) -> dict[str, Any]:
    if action is PlanAction.END_AT_PERIOD_END:
        return {"cancel_at_period_end": True}
    if action is PlanAction.KEEP:
        return {"cancel_at_period_end": False}
    items = (subscription.get("items") or {}).get("data") or []
    metered = [item for item in items if usage_type(item) == "metered"]
    licensed = [item for item in items if usage_type(item) != "metered"]
    return {
        "items": [*priced(licensed, plan.stripe_price_id), *priced(metered, plan.stripe_metered_price_id)],
        "proration_behavior": PRORATION_BEHAVIOR,
        "payment_behavior": PAYMENT_BEHAVIOR,
        "cancel_at_period_end": False,
    }


def priced(items: list[dict[str, Any]], price: str) -> list[dict[str, Any]]:
    """Item changes that leave one item of `price` (none when it is empty): the first
    item swapped in place, so it keeps its id and the meter's usage stays on it."""
    changes: list[dict[str, Any]] = [{"id": item["id"], "deleted": True} for item in items[1:]]
    if items and price:
        return [{"id": items[0]["id"], "price": price}, *changes]
    if items:
        return [{"id": items[0]["id"], "deleted": True}, *changes]
    return [{"price": price}] if price else []


def usage_type(item: dict[str, Any]) -> str:
    """ "metered" or "licensed", from the item's price (or its legacy plan, as some servers send)."""
    price = item.get("price") if isinstance(item.get("price"), dict) else None
    recurring = (price or {}).get("recurring") or {}
    plan = item.get("plan") if isinstance(item.get("plan"), dict) else {}
    return str(recurring.get("usage_type") or (plan or {}).get("usage_type") or "licensed")
