"""The Stripe side of a tenant (public schema): its customer and subscription as
last read from Stripe, and every webhook event received."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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


class BillingAccount(models.Model):
    """One per tenant: its Stripe customer, and its subscription as Stripe last said."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT, related_name="billing_account")
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    subscription_status = models.CharField(
        max_length=20, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE
    )
    subscription_created_at = models.DateTimeField(null=True, blank=True)
    # The billing period the usage counters and budgets roll over on.
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"billing of tenant {self.tenant_id}"

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
