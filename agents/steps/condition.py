"""A condition step: runs its `then` steps when `if` is truthy, else its `else` steps."""

from __future__ import annotations

from typing import Any

from agents.steps.context import Attempt, ExecutionContext
from agents.steps.definitions import ConditionStep
from agents.templating import evaluate


def perform(step: ConditionStep, attempt: Attempt, execution: ExecutionContext) -> Any:
    taken = bool(evaluate(step.condition, attempt.context))
    execution.run_steps(step.then if taken else step.otherwise, attempt.scope)
    return {"branch": "then" if taken else "else"}
