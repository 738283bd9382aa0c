"""Reads of the flags: the table every process caches, and one flag's audited state."""

from __future__ import annotations

from typing import TypedDict

from flags.models import Flag
from flags.rules import FlagRule, FlagTable


class FlagState(TypedDict):
    """A flag as its audit entries record it: plans and tenants by slug."""

    description: str
    enabled_by_default: bool
    rollout_percentage: int | None
    plans: dict[str, bool]
    tenants: dict[str, bool]


def flag_table() -> FlagTable:
    """Every flag with its overrides (three queries, on the public schema's tables)."""
    flags = Flag.objects.prefetch_related("plan_overrides", "tenant_overrides")
    return {
        flag.key: FlagRule(
            key=flag.key,
            enabled_by_default=flag.enabled_by_default,
            rollout_percentage=flag.rollout_percentage,
            plan_overrides={override.plan_id: override.enabled for override in flag.plan_overrides.all()},
            tenant_overrides={
                override.tenant_id: override.enabled for override in flag.tenant_overrides.all()
            },
        )
        for flag in flags
    }


def flag_state(key: str) -> FlagState | None:
    """The flag's state as committed so far in this transaction, or None if there is no such flag."""
    flag = (
        Flag.objects.filter(key=key)
        .prefetch_related("plan_overrides__plan", "tenant_overrides__tenant")
        .first()
    )
    if flag is None:
        return None
    return FlagState(
        description=flag.description,
        enabled_by_default=flag.enabled_by_default,
        rollout_percentage=flag.rollout_percentage,
        plans={override.plan.slug: override.enabled for override in flag.plan_overrides.all()},
        tenants={override.tenant.slug: override.enabled for override in flag.tenant_overrides.all()},
    )
