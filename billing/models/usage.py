"""The usage ledger (public schema): one row per /v1 request, written only by the flusher.

Rows are facts about money, so they outlive anything they point at: the tenant
is PROTECTed (a tenant with usage history is deactivated, never deleted; its
schema is never dropped by deleting a row either), while a deleted API key only
nulls `api_key` and the row stays counted.

The table is partitioned by month of `created_at` (billing/partitions.py,
docs/decisions/0023): its primary key in PostgreSQL is (id, created_at), and
`request_id` cannot be unique there, so the flusher claims each request id in
`UsageRequestId` in the same transaction as the row (billing/usage.py).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class UsageEvent(models.Model):
    request_id = models.CharField(max_length=128, help_text="Once in the ledger (UsageRequestId).")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="usage_events")
    api_key = models.ForeignKey(
        "tenants.ApiKey", on_delete=models.SET_NULL, related_name="usage_events", null=True, blank=True
    )
    model = models.CharField(max_length=200, blank=True, help_text="Public model id; empty when none served.")
    tier = models.PositiveSmallIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    status = models.PositiveSmallIntegerField(help_text="The HTTP status the client got.")
    error_type = models.CharField(max_length=100, blank=True)
    estimated = models.BooleanField(
        default=False, help_text="Tokens were estimated because the provider reported none."
    )
    # When the gateway served the request (from the event), not when it was flushed.
    created_at = models.DateTimeField()
    # When the row's tokens reached Stripe as a meter event (billing/metering.py).
    meter_reported_at = models.DateTimeField(null=True, blank=True)
    meter_error = models.CharField(
        max_length=500, blank=True, help_text="Why Stripe refused it (for good unless a retry is due)."
    )
    # A row Stripe refused is tried again from then on (billing/metering.py); empty
    # with a meter_error: set aside for good.
    meter_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "created_at"]),
            models.Index(fields=["request_id"], name="billing_usage_request_id"),
            models.Index(
                fields=["tenant", "id"],
                condition=models.Q(meter_reported_at__isnull=True, meter_error=""),
                name="billing_usage_unmetered",
            ),
            models.Index(
                fields=["meter_retry_at"],
                condition=models.Q(meter_reported_at__isnull=True, meter_retry_at__isnull=False),
                name="billing_usage_meter_retry",
            ),
        ]

    def __str__(self) -> str:
        return self.request_id


class UsageRequestId(models.Model):
    """A request id the ledger holds, kept LEDGER_DEDUPE_DAYS after it was recorded.

    The unique key the partitioned ledger cannot have: a copy of an event that
    arrives within the window (a redelivered stream entry, a replayed spool
    file, a batch line sent again) finds its id here and is not stored again.
    """

    request_id = models.CharField(max_length=128, primary_key=True)
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.request_id
