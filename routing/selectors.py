"""Reads of the model registry."""

from __future__ import annotations

from django.db.models import QuerySet

from routing.models import ROUTED_MODEL, ModelAlias, ProviderModel


def enabled_models() -> QuerySet[ProviderModel]:
    """The models clients can name, cheapest tier first."""
    return (
        ProviderModel.objects.select_related("provider")
        .filter(is_enabled=True, provider__is_enabled=True)
        .order_by("tier", "model_id")
    )


def unknown_model_names(names: list[str]) -> list[str]:
    """Those of `names` that name no model of the registry, by id or alias (a model
    turned off still counts: it may be turned on again)."""
    wanted = set(names)
    known = set(ProviderModel.objects.filter(model_id__in=wanted).values_list("model_id", flat=True))
    known |= set(ModelAlias.objects.filter(alias__in=wanted).values_list("alias", flat=True))
    return [name for name in names if name not in known]


def unknown_models_message(names: list[str]) -> str | None:
    """Why a key's list of allowed models is refused, or None when every name is a model."""
    if ROUTED_MODEL in names:
        return f"`{ROUTED_MODEL}` routes among the allowed models: list the models it may use instead."
    unknown = unknown_model_names(names)
    if unknown:
        return f"No model is named `{unknown[0]}` (GET /v1/models lists them)."
    return None
