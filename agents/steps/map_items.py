"""A map step: its inner step once per item of a list, each as a step of its own
(`tag[0]`, `tag[1]`, ...); the output is the list of their outputs."""

from __future__ import annotations

from typing import Any

from agents.steps.context import Attempt, ExecutionContext, StepError
from agents.steps.definitions import MapStep
from agents.templating import evaluate


def perform(step: MapStep, attempt: Attempt, execution: ExecutionContext) -> Any:
    items = evaluate(step.over, attempt.context)
    if not isinstance(items, list):
        raise StepError(f"`over` must give a list, not {type(items).__name__}")
    if len(items) > step.max_items:
        raise StepError(f"`over` gave {len(items)} items; at most {step.max_items} are allowed")
    return [
        execution.run_step(step.step, attempt.scope.for_item(index, item)) for index, item in enumerate(items)
    ]
