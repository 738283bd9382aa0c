"""Reads of the model registry."""

from __future__ import annotations

from django.db.models import QuerySet

from routing.models import ProviderModel


def enabled_models() -> QuerySet[ProviderModel]:
    """The models clients can name, cheapest tier first."""
    return (
        ProviderModel.objects.select_related("provider")
        .filter(is_enabled=True, provider__is_enabled=True)
        .order_by("tier", "model_id")
    )
