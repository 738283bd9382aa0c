"""A tenant's router settings and learned outcomes, as the gateway holds them in memory."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from routing.models import DEFAULT_ROUTER_VERSION


@dataclass(frozen=True, slots=True)
class VersionSpec:
    name: str
    artifact: str = "global_router.npz"
    threshold_shift: float = 0.0


DEFAULT_VERSION = VersionSpec(DEFAULT_ROUTER_VERSION)


@dataclass(frozen=True, slots=True)
class TenantRouterConfig:
    tenant_id: int
    quality_target: float = 0.95
    exploration_rate: float = 0.02
    control: VersionSpec = DEFAULT_VERSION
    canary: VersionSpec | None = None
    canary_share: float = 0.0
    # "version|bucket|tier" -> (failures, observations): the tenant's own outcomes.
    outcomes: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def version_for(self, request_id: str) -> VersionSpec:
        if self.canary is not None and canary_slot(request_id) < self.canary_share:
            return self.canary
        return self.control

    def posterior(self, version: str, bucket: str, tier: int, prior: float, strength: float) -> float:
        """P(fail) for `tier` on `bucket`: the prior as `strength` pseudo-observations
        plus the tenant's observed failures."""
        failures, observations = self.outcomes.get(outcome_field(version, bucket, tier), (0.0, 0.0))
        return (strength * prior + failures) / (strength + observations)


def outcome_field(version: str, bucket: str, tier: int) -> str:
    return f"{version}|{bucket}|{tier}"


def canary_slot(request_id: str) -> float:
    """A stable number in [0, 1) per request id: which version serves it."""
    return (zlib.crc32(request_id.encode()) % 10_000) / 10_000
