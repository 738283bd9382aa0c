from django.contrib import admin

from routing.models import ModelAlias, Provider, ProviderModel


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
        "supports_json_mode",
        "supports_embeddings",
        "is_enabled",
    )


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Credentials are never stored here: only the env var or file that holds them."""

    list_display = ("slug", "name", "base_url", "is_simulated", "is_enabled", "max_concurrent_calls")
    list_filter = ("is_enabled", "is_simulated")
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
