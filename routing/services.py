"""Writes to the model registry."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from routing.models import AuthStyle, Provider, ProviderKind, ProviderModel

# model id, tier, context window, USD per 1M input tokens, per 1M output tokens
SIMULATED_MODELS = (
    ("sim-small", 1, 4_096, Decimal("0.15"), Decimal("0.60")),
    ("sim-medium", 2, 16_384, Decimal("1.00"), Decimal("4.00")),
    ("sim-large", 3, 65_536, Decimal("5.00"), Decimal("15.00")),
)

LOCAL_PROVIDER_SLUG = "local"
# The embedding model the gateway runs itself (gateway/providers/local.py; ADR 0017).
# It averages static word vectors, so it has no positional limit (it was trained on
# texts cut at 256 tokens); the window bounds one input's memory and time, at the
# 8,192 tokens OpenAI's embedding models take.
LOCAL_EMBEDDING_MODEL = "local-embed"
LOCAL_EMBEDDING_UPSTREAM = "wordllama-l2-supercat-256"
LOCAL_EMBEDDING_CONTEXT_WINDOW = 8_192
# Calls in flight per process: the model runs on a pool of two threads.
LOCAL_MAX_CONCURRENT_CALLS = 8


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


@transaction.atomic
def register_local_models() -> Provider:
    """Register the in-process provider and its embedding model when missing. Idempotent,
    and it keeps what staff changed since (price, tier, enabled)."""
    provider, _ = Provider.objects.get_or_create(
        slug=LOCAL_PROVIDER_SLUG,
        defaults={
            "name": "Local models (in process)",
            "kind": ProviderKind.LOCAL,
            "base_url": "",
            "auth_style": AuthStyle.NONE,
            "max_concurrent_calls": LOCAL_MAX_CONCURRENT_CALLS,
        },
    )
    ProviderModel.objects.get_or_create(
        model_id=LOCAL_EMBEDDING_MODEL,
        defaults={
            "provider": provider,
            "upstream_model": LOCAL_EMBEDDING_UPSTREAM,
            "tier": 1,
            "context_window": LOCAL_EMBEDDING_CONTEXT_WINDOW,
            "supports_chat": False,
            "supports_json_mode": False,
            "supports_embeddings": True,
        },
    )
    return provider
