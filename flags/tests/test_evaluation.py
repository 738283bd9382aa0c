"""Evaluation order (tenant override, plan override, rollout, default), stable rollouts,
and evaluations that read memory, not the database."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from billing.models import Plan
from flags import is_enabled
from flags.evaluation import evaluate_all
from flags.rules import FlagRule, Rule, rollout_bucket
from flags.services import save_flag, set_plan_override, set_tenant_override
from tenants.models import Tenant
from testing.tenants import TenantFixture

ACTOR = "test@aiaas.example"


@pytest.fixture
def committing(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    """Runs on-commit hooks (the announcement) as if each change were committed."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def on_plan(tenant: TenantFixture, plan: Plan) -> Tenant:
    """A copy of the session's tenant on `plan` (the session's own stays as it is)."""
    moved = copy.copy(tenant.tenant)
    moved.plan = plan
    return moved


def test_a_flag_has_its_default_for_a_tenant_without_overrides(tenant: TenantFixture) -> None:
    save_flag("on-by-default", enabled_by_default=True, actor=ACTOR)
    save_flag("off-by-default", enabled_by_default=False, actor=ACTOR)

    assert is_enabled("on-by-default", tenant.tenant) is True
    assert is_enabled("off-by-default", tenant.tenant) is False


def test_an_unknown_flag_is_off(tenant: TenantFixture) -> None:
    assert is_enabled("no-such-flag", tenant.tenant) is False


def test_the_seeded_features_are_on(tenant: TenantFixture) -> None:
    evaluations = evaluate_all(tenant.tenant)

    seeded = {
        e.key: (e.enabled, e.rule)
        for e in evaluations
        if e.key in {"playground", "agents", "ingestion", "evals", "batches"}
    }
    assert seeded == {
        key: (True, Rule.DEFAULT) for key in ("agents", "batches", "evals", "ingestion", "playground")
    }


def test_a_plan_override_beats_the_default_for_tenants_on_that_plan(
    tenant: TenantFixture, other_tenant: TenantFixture, committing: Callable[..., Any]
) -> None:
    pro = Plan.objects.get(slug="pro")
    save_flag("beta-search", enabled_by_default=False, actor=ACTOR)
    with committing():
        set_plan_override("beta-search", pro, True, actor=ACTOR)

    assert is_enabled("beta-search", on_plan(tenant, pro)) is True
    assert is_enabled("beta-search", on_plan(other_tenant, Plan.objects.get(slug="free"))) is False


def test_a_tenant_override_beats_its_plan_override_and_the_rollout(
    tenant: TenantFixture, other_tenant: TenantFixture, committing: Callable[..., Any]
) -> None:
    pro = Plan.objects.get(slug="pro")
    save_flag("beta-search", enabled_by_default=True, rollout_percentage=100, actor=ACTOR)
    with committing():
        set_plan_override("beta-search", pro, True, actor=ACTOR)
        set_tenant_override("beta-search", tenant.tenant, False, actor=ACTOR)

    assert is_enabled("beta-search", on_plan(tenant, pro)) is False
    assert is_enabled("beta-search", on_plan(other_tenant, pro)) is True


def test_removing_an_override_returns_the_tenant_to_the_default(
    tenant: TenantFixture, committing: Callable[..., Any]
) -> None:
    save_flag("beta-search", enabled_by_default=True, actor=ACTOR)
    with committing():
        set_tenant_override("beta-search", tenant.tenant, False, actor=ACTOR)
    assert is_enabled("beta-search", tenant.tenant) is False

    with committing():
        set_tenant_override("beta-search", tenant.tenant, None, actor=ACTOR)

    assert is_enabled("beta-search", tenant.tenant) is True


def test_a_rollout_turns_a_flag_on_for_about_its_share_of_tenants() -> None:
    rule = FlagRule("gradual", enabled_by_default=True, rollout_percentage=30)

    enabled = sum(rule.resolve(tenant_id, None).enabled for tenant_id in range(1, 20_001))

    assert 0.28 < enabled / 20_000 < 0.32


def test_a_tenant_keeps_its_rollout_place_and_raising_the_share_only_adds_tenants() -> None:
    tenants = range(1, 2_001)
    at_10 = {t for t in tenants if FlagRule("gradual", False, 10).resolve(t, None).enabled}
    again = {t for t in tenants if FlagRule("gradual", False, 10).resolve(t, None).enabled}
    at_50 = {t for t in tenants if FlagRule("gradual", False, 50).resolve(t, None).enabled}

    assert at_10 == again
    assert at_10 < at_50
    assert rollout_bucket("gradual", 42) == 26  # sha256("gradual:42"): the same in every process


def test_rollouts_of_different_flags_pick_different_tenants() -> None:
    tenants = range(1, 2_001)
    first = {t for t in tenants if rollout_bucket("first", t) < 50}
    second = {t for t in tenants if rollout_bucket("second", t) < 50}

    assert 0.4 < len(first & second) / len(first) < 0.6


def test_a_rollout_percentage_decides_for_a_tenant_without_overrides(
    tenant: TenantFixture, committing: Callable[..., Any]
) -> None:
    with committing():
        save_flag("gradual", enabled_by_default=True, rollout_percentage=0, actor=ACTOR)
    assert is_enabled("gradual", tenant.tenant) is False

    with committing():
        save_flag("gradual", enabled_by_default=False, rollout_percentage=100, actor=ACTOR)

    assert is_enabled("gradual", tenant.tenant) is True


def test_evaluations_read_memory_not_the_database(
    tenant: TenantFixture, django_assert_num_queries: Callable[..., Any]
) -> None:
    is_enabled("agents", tenant.tenant)

    with django_assert_num_queries(0):
        for _ in range(100):
            assert is_enabled("agents", tenant.tenant) is True
