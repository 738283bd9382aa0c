from django.contrib import admin

from billing.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "slug",
        "name",
        "is_default",
        "key_requests_per_minute",
        "key_tokens_per_minute",
        "tenant_requests_per_minute",
        "tenant_tokens_per_minute",
        "monthly_token_budget",
        "monthly_spend_budget_usd",
        "updated_at",
    )
    search_fields = ("slug", "name")
