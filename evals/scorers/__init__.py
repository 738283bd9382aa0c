"""Scorers: what decides whether a case's output is good, each from a JSON spec.

A spec is `{"type": "<scorer>", ..., "name": ..., "weight": ...}` (a case's
`assertions`, its version's, or an experiment's `scorers`). `build` turns a
list of specs into scorers, refusing unknown types and bad arguments with
`ScorerSpecError` (a 400 at the API, before any case runs). `Scorer.score` is
async because the LLM judges and tools make calls; deterministic scorers
return at once. The types and their arguments are listed in
evals/scorers/registry.py.

This module is the contract between the runner (evals/runner.py) and the
scorers (evals/scorers/*.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from gateway.transports.inprocess import InProcessGateway
from tenants.models import ApiKey


class ScorerSpecError(ValueError):
    """A scorer spec that cannot be built: the message says which and why."""


@dataclass(frozen=True)
class Observation:
    """What the target did with one case, as the scorers see it."""

    case_key: str
    input: Any
    expected: Any
    output: Any  # the answer's text, or an agent run's output object
    latency_ms: int
    cost_usd: Decimal
    # The output another experiment (the baseline) gave for the same case: what the
    # pairwise judge compares `output` with. None when there is no baseline.
    baseline_output: Any = None


@dataclass(frozen=True)
class Score:
    scorer: str  # the spec's `name`, or its type
    score: float  # 0 to 1
    passed: bool
    reason: str = ""  # why, in words; an LLM judge's reasoning is kept here
    weight: float = 1.0  # the spec's `weight` in the case's mean score
    # Gateway calls the scorer made (judges): billed, and shown with the result.
    request_ids: tuple[str, ...] = ()
    cost_usd: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "score": self.score,
            "passed": self.passed,
            "reason": self.reason,
            "weight": self.weight,
        }


@dataclass
class JudgeContext:
    """What a scorer that calls a model needs: the gateway, the key calls are billed
    to, and a stable request-id prefix so a case re-scored after a crash is billed once."""

    gateway: InProcessGateway
    api_key: ApiKey
    request_id_prefix: str
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    async def score(self, observation: Observation, context: JudgeContext) -> Score: ...


def build(specs: Any) -> list[Scorer]:
    """The scorers of a list of specs, in order, or ScorerSpecError naming the first
    bad spec (by its index) and what is wrong with it."""
    # Imported here: every scorer module imports this contract.
    from evals.scorers.registry import build_all

    return build_all(specs)


def combine(scores: Sequence[Score]) -> tuple[bool, float]:
    """A case's verdict from its scores: passed when every score passed, and the
    mean score weighted by the specs' weights (1.0, passed, when there are none)."""
    total_weight = sum(score.weight for score in scores)
    if not total_weight:
        return True, 1.0
    mean = sum(score.score * score.weight for score in scores) / total_weight
    return all(score.passed for score in scores), mean
