"""What a step's handler gets: the step's place (scope), this attempt of it, and the
part of the execution it may use (ExecutionContext)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from agents.events import EventData, RunState
from agents.models import Run, RunEvent
from agents.runtime import Runtime
from agents.steps.definitions import Step
from agents.tools.manifests import ToolManifest
from tenants.models import ApiKey


class StepError(Exception):
    """A step failed; the run fails (and compensates)."""


class StepFailedError(Exception):
    """A step failed and its failure is recorded; the message names the innermost step."""


@dataclass(frozen=True)
class Scope:
    """Where a step runs: at the top (or in a branch), or for one item of a map,
    where its id gets the item's `[index]` and templates see `item` and `index`."""

    suffix: str = ""
    variables: Mapping[str, Any] = field(default_factory=dict)

    def for_item(self, index: int, item: Any) -> Scope:
        return Scope(f"{self.suffix}[{index}]", {**self.variables, "item": item, "index": index})


@dataclass(frozen=True)
class Attempt:
    """One execution of a step: its id in the run (`tag[2]`), its number (from 1), its
    scope, the data its templates see, and the feedback of a validation that asked
    to run it again."""

    step_id: str
    number: int
    scope: Scope
    context: dict[str, Any]
    feedback: str | None = None


@dataclass(frozen=True)
class Budget:
    max_steps: int
    max_seconds: float
    max_cost: Decimal | None

    @classmethod
    def of(cls, budget: Mapping[str, Any]) -> Budget:
        cost = Decimal(str(budget["max_cost_usd"])) if "max_cost_usd" in budget else None
        return cls(int(budget["max_steps"]), float(budget["max_seconds"]), cost)


class ExecutionContext(Protocol):
    """What of the executing run a step handler uses."""

    run: Run
    state: RunState
    rt: Runtime
    registry: dict[str, ToolManifest]
    schema: str
    budget: Budget
    recorded_models: dict[str, str]

    def record(self, event: EventData, step_id: str = "", key: str = "") -> RunEvent | None: ...

    def template_context(self, scope: Scope) -> dict[str, Any]: ...

    def step_named(self, step_id: str) -> Step: ...

    def run_steps(self, steps: tuple[Step, ...], scope: Scope) -> None: ...

    def run_step(self, step: Step, scope: Scope, rerun_feedback: str | None = None) -> Any: ...

    def api_key(self) -> ApiKey: ...
