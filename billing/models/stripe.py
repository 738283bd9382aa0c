"""The Stripe side of a tenant (public schema): its customer and subscription as
last read from Stripe, and every webhook event received."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from tenants.models import forget_tenants_after_commit


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, and `none` before the first one."""

    NONE = "none", "No subscription"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


# Statuses under which the subscription's plan applies and usage is metered.
LIVE_STATUSES = frozenset(
    {SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)


class BillingAccountQuerySet(models.QuerySet["BillingAccount"]):
    """Updates and deletes tell the gateways to reload the accounts' tenants' keys,
    which they cache with the billing account (its period and status set the limits)."""

    def update(self, **kwargs: Any) -> int:
        tenant_ids = list(self.values_list("tenant_id", flat=True))
        updated = super().update(**kwargs)
        forget_tenants_after_commit(tenant_ids)
        return updated

    def delete(self) -> tuple[int, dict[str, int]]:
        tenant_ids = list(self.values_list("tenant_id", flat=True))
        deleted = super().delete()
        forget_tenants_after_commit(tenant_ids)
        return deleted


class BillingAccount(models.Model):
    """One per tenant: its Stripe customer, and its subscription as Stripe last said.
    Every write announces itself once committed (tenants/gateway_cache.py)."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT, related_name="billing_account")
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    subscription_status = models.CharField(
        max_length=20, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE
    )
    subscription_created_at = models.DateTimeField(null=True, blank=True)
    # The billing period the usage counters and budgets roll over on; for an ended
    # subscription its end is when it ended, if earlier (rows after are not metered).
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # A plan change sent to Stripe that no webhook has confirmed yet (billing/plan_changes.py);
    # the next subscription read from Stripe clears it, since it already carries the change.
    requested_plan = models.ForeignKey(
        "billing.Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    plan_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BillingAccountQuerySet.as_manager()

    def __str__(self) -> str:
        return f"billing of tenant {self.tenant_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved (a new account too: a key cached before it has none), and once
        committed the gateways reload the tenant's keys."""
        super().save(*args, **kwargs)
        forget_tenants_after_commit([self.tenant_id])

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        deleted: tuple[int, dict[str, int]] = super().delete(*args, **kwargs)
        forget_tenants_after_commit([self.tenant_id])
        return deleted

    @property
    def is_live(self) -> bool:
        return self.subscription_status in LIVE_STATUSES


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received, queued"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (not about anything we know)"
    FAILED = "failed", "Failed"


class StripeEvent(models.Model):
    """A verified webhook event, stored once per Stripe event id before it is processed."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=255)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=EventStatus.choices, default=EventStatus.RECEIVED)
    detail = models.TextField(blank=True, help_text="Why it was ignored or failed.")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.type})"
