"""Model registry rows: providers, the models they serve, aliases."""

from __future__ import annotations

from decimal import Decimal

from factory.declarations import LazyAttribute, Sequence, SubFactory
from factory.django import DjangoModelFactory

from routing.models import AuthStyle, ModelAlias, Provider, ProviderModel


class ProviderFactory(DjangoModelFactory[Provider]):
    """An OpenAI-compatible endpoint needing no credential; nothing listens at its URL."""

    class Meta:
        model = Provider

    slug = Sequence(lambda n: f"provider-{n}")
    name = LazyAttribute(lambda provider: provider.slug.replace("-", " ").title())
    base_url = "http://127.0.0.1:9/v1"
    auth_style = AuthStyle.NONE


class ProviderModelFactory(DjangoModelFactory[ProviderModel]):
    """A tier-1 chat model, $1 per million tokens in and $2 out."""

    class Meta:
        model = ProviderModel

    model_id = Sequence(lambda n: f"model-{n}")
    provider = SubFactory(ProviderFactory)
    upstream_model = LazyAttribute(lambda model: model.model_id)
    tier = 1
    context_window = 8_192
    input_price_per_million = Decimal("1.00")
    output_price_per_million = Decimal("2.00")


class ModelAliasFactory(DjangoModelFactory[ModelAlias]):
    class Meta:
        model = ModelAlias

    alias = Sequence(lambda n: f"alias-{n}")
    target = SubFactory(ProviderModelFactory)
