"""How one flag resolves for one tenant: tenant override, else plan override, else the
percentage rollout (stable per tenant), else the default. Pure: no database, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Rule(StrEnum):
    """Which rule decided a flag's value."""

    TENANT_OVERRIDE = "tenant_override"
    PLAN_OVERRIDE = "plan_override"
    ROLLOUT = "rollout"
    DEFAULT = "default"


@dataclass(frozen=True)
class Resolution:
    enabled: bool
    rule: Rule


@dataclass(frozen=True)
class FlagRule:
    key: str
    enabled_by_default: bool
    rollout_percentage: int | None = None
    plan_overrides: Mapping[int, bool] = field(default_factory=dict)
    tenant_overrides: Mapping[int, bool] = field(default_factory=dict)

    def resolve(self, tenant_id: int, plan_id: int | None) -> Resolution:
        if tenant_id in self.tenant_overrides:
            return Resolution(self.tenant_overrides[tenant_id], Rule.TENANT_OVERRIDE)
        if plan_id is not None and plan_id in self.plan_overrides:
            return Resolution(self.plan_overrides[plan_id], Rule.PLAN_OVERRIDE)
        if self.rollout_percentage is not None:
            return Resolution(rollout_bucket(self.key, tenant_id) < self.rollout_percentage, Rule.ROLLOUT)
        return Resolution(self.enabled_by_default, Rule.DEFAULT)


def rollout_bucket(key: str, tenant_id: int) -> int:
    """The tenant's place (0-99) in this flag's rollout: the same in every process and
    release, and independent between flags, so raising the percentage only adds tenants."""
    digest = hashlib.sha256(f"{key}:{tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


FlagTable = Mapping[str, FlagRule]
