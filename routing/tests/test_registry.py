from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from routing.catalog import load_catalog
from routing.models import ModelAlias, ProviderModel
from routing.policy import CheapestCapableTier, NoCapableModelError, RouteRequest
from routing.services import register_simulated_provider
from routing.tests.factories import ModelAliasFactory, ProviderModelFactory
from testing.tenants import TenantFixture


@pytest.fixture
def simulated(db: None) -> None:
    register_simulated_provider("http://127.0.0.1:9/v1", slug="sim-registry-test")


def test_the_dashboard_lists_the_models_and_labels_simulated_ones(
    simulated: None, tenant: TenantFixture
) -> None:
    page = tenant.web_client().get("/dashboard/").content.decode()

    for model_id in ("sim-small", "sim-medium", "sim-large"):
        assert f"<code>{model_id}</code>" in page
    assert page.count(">simulated</span>") == 3


def test_registering_the_simulated_provider_twice_changes_nothing(simulated: None) -> None:
    register_simulated_provider("http://127.0.0.1:9/v1", slug="sim-registry-test")

    assert ProviderModel.objects.filter(provider__slug="sim-registry-test").count() == 3


def test_an_alias_resolves_and_may_not_shadow_auto_or_a_model(simulated: None) -> None:
    target = ProviderModel.objects.get(model_id="sim-large")
    ModelAliasFactory.create(alias="best", target=target)

    assert load_catalog().resolve("best").model_id == "sim-large"  # type: ignore[union-attr]
    for alias in ("auto", "sim-small"):
        with pytest.raises(ValidationError):
            ModelAlias(alias=alias, target=target).full_clean()


def test_the_catalog_leaves_out_disabled_models_and_the_models_of_disabled_providers(db: None) -> None:
    served = ProviderModelFactory.create()
    disabled = ProviderModelFactory.create(provider=served.provider, is_enabled=False)
    orphaned = ProviderModelFactory.create(provider__is_enabled=False)

    catalog = load_catalog()

    assert catalog.resolve(served.model_id) is not None
    assert (catalog.resolve(disabled.model_id), catalog.resolve(orphaned.model_id)) == (None, None)


def test_the_catalog_prices_a_request(simulated: None) -> None:
    model = load_catalog().resolve("sim-medium")

    assert model is not None
    assert model.cost_usd(1_000_000, 500_000) == Decimal("3.00")


def test_auto_plans_every_capable_model_cheapest_first(simulated: None) -> None:
    plan = CheapestCapableTier().plan(RouteRequest("auto", 100, 100), load_catalog(), lambda model: True)

    assert [model.model_id for model in plan.chain] == ["sim-small", "sim-medium", "sim-large"]


def test_a_prompt_beyond_a_context_window_skips_that_model(simulated: None) -> None:
    plan = CheapestCapableTier().plan(
        RouteRequest("sim-small", 10_000, 100), load_catalog(), lambda model: True
    )

    assert [model.model_id for model in plan.chain] == ["sim-medium", "sim-large"]
    assert plan.reason == "requested model cannot serve it; fell back to tier 2"


def test_a_named_model_falls_back_only_to_higher_allowed_tiers(simulated: None) -> None:
    allowed = {"sim-medium", "sim-small"}
    plan = CheapestCapableTier().plan(
        RouteRequest("sim-medium", 10, 10), load_catalog(), allowed.__contains__
    )

    assert [model.model_id for model in plan.chain] == ["sim-medium"]


def test_nothing_capable_is_a_clear_error(simulated: None) -> None:
    with pytest.raises(NoCapableModelError):
        CheapestCapableTier().plan(RouteRequest("auto", 100_000, 100), load_catalog(), lambda model: True)
