"""Models (kind "model", public schema): the model registry's entries (routing/)
as signed manifests, one per model with its provider, so they move between
environments with `manage.py registry export|import`.

A model entry promoted to production (or rolled back to) is written into the
routing tables, where the gateway's catalog reads it (within CATALOG_TTL_SECONDS).
Credentials never travel: a manifest names the variable or file holding one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from routing.models import AuthStyle, Provider, ProviderKind, ProviderModel

PROVIDER_FIELDS = (
    "name",
    "kind",
    "base_url",
    "auth_style",
    "credential_env",
    "credential_file",
    "default_query",
    "connect_timeout_seconds",
    "first_token_timeout_seconds",
    "total_timeout_seconds",
    "max_concurrent_calls",
    "is_simulated",
    "is_enabled",
)
MODEL_FIELDS = (
    "upstream_model",
    "tier",
    "context_window",
    "supports_chat",
    "supports_json_mode",
    "supports_embeddings",
    "is_enabled",
)
PRICE_FIELDS = ("input_price_per_million", "output_price_per_million")
PRICE = {"type": "string", "pattern": r"^\d{1,6}(\.\d{1,6})?$"}
MANIFEST_VALIDATOR = Draft202012Validator(
    {
        "type": "object",
        "required": ["name", "provider", *MODEL_FIELDS, *PRICE_FIELDS],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "upstream_model": {"type": "string", "minLength": 1, "maxLength": 200},
            "tier": {"type": "integer", "minimum": 1, "maximum": 100},
            "context_window": {"type": "integer", "minimum": 1},
            "supports_chat": {"type": "boolean"},
            "supports_json_mode": {"type": "boolean"},
            "supports_embeddings": {"type": "boolean"},
            "is_enabled": {"type": "boolean"},
            "input_price_per_million": PRICE,
            "output_price_per_million": PRICE,
            "provider": {
                "type": "object",
                "required": ["slug", *PROVIDER_FIELDS],
                "additionalProperties": False,
                "properties": {
                    "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]{1,50}$"},
                    "name": {"type": "string", "maxLength": 100},
                    "kind": {"enum": ProviderKind.values},
                    "base_url": {"type": "string", "maxLength": 200},
                    "auth_style": {"enum": AuthStyle.values},
                    "credential_env": {"type": "string", "maxLength": 100},
                    "credential_file": {"type": "string", "maxLength": 500},
                    "default_query": {"type": "object", "additionalProperties": {"type": "string"}},
                    "connect_timeout_seconds": {"type": "number", "minimum": 0.05},
                    "first_token_timeout_seconds": {"type": "number", "minimum": 0.05},
                    "total_timeout_seconds": {"type": "number", "minimum": 0.1},
                    "max_concurrent_calls": {"type": "integer", "minimum": 1},
                    "is_simulated": {"type": "boolean"},
                    "is_enabled": {"type": "boolean"},
                },
            },
        },
    }
)


class ModelManifestError(ValueError):
    pass


def check_manifest(manifest: dict[str, Any]) -> None:
    error = best_match(MANIFEST_VALIDATOR.iter_errors(manifest))
    if error is not None:
        raise ModelManifestError(f"malformed model manifest at {error.json_path}: {error.message}")


def manifest_of(model: ProviderModel) -> dict[str, Any]:
    """The manifest of a model in the routing tables, its provider included."""
    provider = model.provider
    return {
        "name": model.model_id,
        **{field: getattr(model, field) for field in MODEL_FIELDS},
        **{field: f"{getattr(model, field).normalize():f}" for field in PRICE_FIELDS},
        "provider": {"slug": provider.slug, **{field: getattr(provider, field) for field in PROVIDER_FIELDS}},
    }


def apply_manifest(manifest: dict[str, Any]) -> ProviderModel:
    """Write the manifest's provider and model into the routing tables (the caller's
    transaction). A provider that breaks routing's rules (a credential variable
    outside the allowed prefixes) is refused with ModelManifestError."""
    fields = manifest["provider"]
    provider = Provider.objects.filter(slug=fields["slug"]).first() or Provider(slug=fields["slug"])
    for field in PROVIDER_FIELDS:
        setattr(provider, field, fields[field])
    try:
        provider.full_clean(exclude=["slug"], validate_unique=False)
    except ValidationError as error:
        raise ModelManifestError(f"provider {fields['slug']}: {error.messages}") from None
    provider.save()
    model, _ = ProviderModel.objects.update_or_create(
        model_id=manifest["name"],
        defaults={
            "provider": provider,
            **{field: manifest[field] for field in MODEL_FIELDS},
            **{field: Decimal(manifest[field]) for field in PRICE_FIELDS},
        },
    )
    return model
