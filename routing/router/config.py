"""A tenant's router settings and learned outcomes, as the gateway holds them in memory."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from routing.models import DEFAULT_ROUTER_VERSION

if TYPE_CHECKING:
    from routing.router.ranking import TenantRanking


class Tally(NamedTuple):
    """Judged requests of one tier on one bucket: how many failed, how many there
    were, and the sum of the P(fail) the router had for them."""

    failures: float = 0.0
    observations: float = 0.0
    predicted: float = 0.0


def logit(probability: float) -> float:
    clipped = min(max(probability, 1e-4), 1 - 1e-4)
    return math.log(clipped / (1 - clipped))


def expit(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


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
    # "version|bucket|tier" -> the tenant's own outcomes there.
    outcomes: Mapping[str, Tally] = field(default_factory=dict)
    # version -> the threshold re-solved from the tenant's judged outcomes
    # (routing/router/adaptation.py), once there are enough of them.
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # version -> the tenant's judged prompts that re-rank its scores
    # (routing/router/ranking.py), once there are enough of them.
    rankings: Mapping[str, TenantRanking] = field(default_factory=dict)

    def version_for(self, request_id: str) -> VersionSpec:
        if self.canary is not None and canary_slot(request_id) < self.canary_share:
            return self.canary
        return self.control

    def posterior(self, version: str, bucket: str, tier: int, prior: float, strength: float) -> float:
        """P(fail) for `tier` on this prompt: its prior, shifted on the log-odds scale
        by how far the tenant's failures on `bucket` are from what the priors there
        predicted. The observed rate is smoothed towards the predicted one by
        `strength` pseudo-observations, and the shift keeps the ranking of the
        prompts within the bucket."""
        tally = self.outcomes.get(outcome_field(version, bucket, tier))
        if tally is None or tally.observations <= 0:
            return prior
        predicted = tally.predicted / tally.observations
        observed = (tally.failures + strength * predicted) / (tally.observations + strength)
        return expit(logit(prior) + logit(observed) - logit(predicted))


def outcome_field(version: str, bucket: str, tier: int) -> str:
    return f"{version}|{bucket}|{tier}"


def canary_slot(request_id: str) -> float:
    """A stable number in [0, 1) per request id: which version serves it."""
    return (zlib.crc32(request_id.encode()) % 10_000) / 10_000
