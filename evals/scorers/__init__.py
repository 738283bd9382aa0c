"""Scorers: what decides whether a case's output is good, each from a JSON spec.

A spec is `{"type": "<scorer>", ...}` (a case's `assertions`, its version's,
or an experiment's `scorers`). `build` turns a list of specs into scorers,
refusing unknown types and bad arguments with `ScorerSpecError` (a 400 at
the API, before any case runs). `Scorer.score` is async because the LLM
judges call the gateway; deterministic scorers return at once.

This module is the contract between the runner (evals/runner.py) and the
scorers (evals/scorers/*.py).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Score:
    scorer: str  # the spec's `name`, or its type
    score: float  # 0 to 1
    passed: bool
    reason: str = ""  # why, in words; an LLM judge's reasoning is kept here
    # Gateway calls the scorer made (judges): billed, and shown with the result.
    request_ids: tuple[str, ...] = ()
    cost_usd: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "score": self.score, "passed": self.passed, "reason": self.reason}


@dataclass
class JudgeContext:
    """What a scorer that calls a model needs: the gateway, the key calls are billed
    to, and a stable request-id prefix so a case re-scored after a crash is billed once."""

    gateway: InProcessGateway
    api_key: ApiKey
    request_id_prefix: str
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    name: str

    async def score(self, observation: Observation, context: JudgeContext) -> Score: ...
