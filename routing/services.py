"""Writes to the model registry."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from routing.models import Provider, ProviderModel

# model id, tier, context window, USD per 1M input tokens, per 1M output tokens
SIMULATED_MODELS = (
    ("sim-small", 1, 4_096, Decimal("0.15"), Decimal("0.60")),
    ("sim-medium", 2, 16_384, Decimal("1.00"), Decimal("4.00")),
    ("sim-large", 3, 65_536, Decimal("5.00"), Decimal("15.00")),
)


@transaction.atomic
def register_simulated_provider(
    base_url: str, *, slug: str = "simulated", **provider_options: float | int
) -> Provider:
    """Register (or re-point) the project's simulated provider and its three models. Idempotent."""
    provider, _ = Provider.objects.update_or_create(
        slug=slug,
        defaults={
            "name": "Simulated provider",
            "base_url": base_url,
            "auth_style": "none",
            "is_simulated": True,
            "is_enabled": True,
            **provider_options,
        },
    )
    for model_id, tier, context_window, input_price, output_price in SIMULATED_MODELS:
        ProviderModel.objects.update_or_create(
            model_id=model_id,
            defaults={
                "provider": provider,
                "upstream_model": model_id,
                "tier": tier,
                "context_window": context_window,
                "input_price_per_million": input_price,
                "output_price_per_million": output_price,
                "supports_json_mode": True,
                "supports_embeddings": True,
                "is_enabled": True,
            },
        )
    return provider
