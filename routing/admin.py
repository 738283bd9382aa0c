from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from routing.models import CanaryState, ModelAlias, Provider, ProviderModel, RouterVersion, TenantRouting
from routing.router.canary import reset_canary_counters


class ProviderModelInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ProviderModel
    extra = 0
    fields = (
        "model_id",
        "upstream_model",
        "tier",
        "context_window",
        "input_price_per_million",
        "output_price_per_million",
        "supports_chat",
        "supports_json_mode",
        "supports_embeddings",
        "is_enabled",
    )


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Credentials are never stored here: only the env var or file that holds them."""

    list_display = ("slug", "name", "kind", "base_url", "is_simulated", "is_enabled", "max_concurrent_calls")
    list_filter = ("kind", "is_enabled", "is_simulated")
    search_fields = ("slug", "name", "base_url")
    inlines = [ProviderModelInline]


@admin.register(ProviderModel)
class ProviderModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "model_id",
        "provider",
        "tier",
        "context_window",
        "input_price_per_million",
        "output_price_per_million",
        "supports_chat",
        "supports_json_mode",
        "supports_embeddings",
        "is_enabled",
    )
    list_filter = ("provider", "tier", "is_enabled")
    search_fields = ("model_id", "upstream_model")


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("alias", "target")
    search_fields = ("alias",)


@admin.register(RouterVersion)
class RouterVersionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "artifact", "threshold_shift", "description", "created_at")
    search_fields = ("name", "description")


@admin.register(TenantRouting)
class TenantRoutingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Start a canary by choosing its version and share and setting the state to
    Running: its counters start from zero and beat's sequential test judges it."""

    list_display = ("tenant", "quality_target", "control", "canary", "canary_share", "canary_state")
    list_filter = ("canary_state",)
    search_fields = ("tenant__slug", "tenant__name")
    autocomplete_fields = ("tenant",)
    readonly_fields = (
        "canary_started_at",
        "canary_decided_at",
        "canary_verdict",
        "outcomes_snapshot_at",
        "updated_at",
    )
    exclude = ("outcomes_snapshot",)

    def save_model(self, request: HttpRequest, obj: TenantRouting, form: Any, change: bool) -> None:
        starting = obj.canary_state == CanaryState.RUNNING and bool(
            {"canary", "canary_state", "canary_share"} & set(form.changed_data)
        )
        if starting:
            reset_canary_counters(obj.tenant_id)
            obj.canary_started_at, obj.canary_decided_at, obj.canary_verdict = timezone.now(), None, "running"
        super().save_model(request, obj, form, change)
