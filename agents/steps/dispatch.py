"""Which handler executes a step: one module per kind (map_items for `map`)."""

from __future__ import annotations

from typing import Any, assert_never

from agents.steps import condition, llm, map_items, retrieve, tool, validate
from agents.steps.context import Attempt, ExecutionContext
from agents.steps.definitions import (
    ConditionStep,
    LlmStep,
    MapStep,
    RetrieveStep,
    Step,
    ToolStep,
    ValidateStep,
)


def perform(step: Step, attempt: Attempt, execution: ExecutionContext) -> Any:
    """The step's output; StepError (or the error of a template, tool or model call) if it fails."""
    match step:
        case LlmStep():
            return llm.perform(step, attempt, execution)
        case ToolStep():
            return tool.perform(step, attempt, execution)
        case ConditionStep():
            return condition.perform(step, attempt, execution)
        case MapStep():
            return map_items.perform(step, attempt, execution)
        case ValidateStep():
            return validate.perform(step, attempt, execution)
        case RetrieveStep():
            return retrieve.perform(step, attempt, execution)
        case _:
            assert_never(step)
