from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import BillingAccount, Plan, StripeEvent


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "slug",
        "name",
        "is_default",
        "monthly_price_usd",
        "included_tokens",
        "included_requests",
        "cap_mode",
        "overage_usd_per_million_tokens",
        "key_requests_per_minute",
        "key_tokens_per_minute",
        "tenant_requests_per_minute",
        "tenant_tokens_per_minute",
        "monthly_token_budget",
        "monthly_spend_budget_usd",
        "updated_at",
    )
    search_fields = ("slug", "name")


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only: Stripe's webhooks write these."""

    list_display = (
        "tenant",
        "stripe_customer_id",
        "subscription_status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
    )
    search_fields = ("tenant__slug", "stripe_customer_id", "stripe_subscription_id")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("event_id", "type", "status", "received_at", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("event_id",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
