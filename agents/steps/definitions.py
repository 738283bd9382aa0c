"""The steps of a workflow spec, typed: one frozen class per kind.

Built by `agents.spec.parse_steps` from a spec that has been validated (and, for
a run, had its overlay applied and its prompts frozen); the stored spec JSON is
unchanged and stays the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from ingestion.search import SearchMode

MAX_MAP_ITEMS = 100
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_TOP_K = 5
MAX_TOP_K = 50


class StepKind(StrEnum):
    LLM = "llm"
    TOOL = "tool"
    CONDITION = "condition"
    MAP = "map"
    VALIDATE = "validate"
    RETRIEVE = "retrieve"


@dataclass(frozen=True)
class LlmStep:
    """A model call; `output_schema`, when given, makes the answer JSON that must match it."""

    kind: ClassVar[StepKind] = StepKind.LLM
    id: str
    prompt: str
    system: str | None = None
    model: str = "auto"
    output_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    description: str = ""
    optional: bool = False  # skipped while the degrade level skips optional steps

    @property
    def children(self) -> tuple[Step, ...]:
        return ()


@dataclass(frozen=True)
class ToolStep:
    """A call of a tool with a verified manifest; `input` is a template (any JSON value)."""

    kind: ClassVar[StepKind] = StepKind.TOOL
    id: str
    tool: str
    input: Any = field(default_factory=dict)
    description: str = ""
    optional: bool = False  # skipped while the degrade level skips optional steps

    @property
    def children(self) -> tuple[Step, ...]:
        return ()


@dataclass(frozen=True)
class ConditionStep:
    """Runs `then` when the expression `condition` (the spec's `if`) is truthy, else `otherwise`."""

    kind: ClassVar[StepKind] = StepKind.CONDITION
    id: str
    condition: str
    then: tuple[Step, ...]
    otherwise: tuple[Step, ...] = ()
    description: str = ""
    optional: bool = False  # skipped while the degrade level skips optional steps

    @property
    def children(self) -> tuple[Step, ...]:
        return (*self.then, *self.otherwise)


@dataclass(frozen=True)
class MapStep:
    """Runs `step` once per item of the list `over` gives (at most `max_items`)."""

    kind: ClassVar[StepKind] = StepKind.MAP
    id: str
    over: str
    step: Step
    max_items: int = MAX_MAP_ITEMS
    description: str = ""
    optional: bool = False  # skipped while the degrade level skips optional steps

    @property
    def children(self) -> tuple[Step, ...]:
        return (self.step,)


@dataclass(frozen=True)
class Retry:
    """Which llm step a failed validation runs again, and how many attempts it gets in all."""

    step: str
    max_attempts: int = DEFAULT_RETRY_ATTEMPTS


@dataclass(frozen=True)
class ValidateStep:
    """Checks the rendered `value` against the JSON Schema `schema`."""

    kind: ClassVar[StepKind] = StepKind.VALIDATE
    id: str
    value: Any
    schema: dict[str, Any]
    retry: Retry | None = None
    description: str = ""
    optional: bool = False  # skipped while the degrade level skips optional steps

    @property
    def children(self) -> tuple[Step, ...]:
        return ()


@dataclass(frozen=True)
class RetrieveStep:
    """A search of a collection (its id or name) for the rendered `query`; `filters`
    is a template (any JSON value) matched against documents' metadata."""

    kind: ClassVar[StepKind] = StepKind.RETRIEVE
    id: str
    collection: str
    query: str
    top_k: int = DEFAULT_TOP_K
    mode: SearchMode = SearchMode.HYBRID
    filters: Any = None
    description: str = ""
    optional: bool = False  # skipped while the degrade level skips optional steps

    @property
    def children(self) -> tuple[Step, ...]:
        return ()


Step: TypeAlias = LlmStep | ToolStep | ConditionStep | MapStep | ValidateStep | RetrieveStep


def walk_steps(steps: tuple[Step, ...]) -> Iterator[Step]:
    """Every step, nested ones included, in execution order."""
    for step in steps:
        yield step
        yield from walk_steps(step.children)
