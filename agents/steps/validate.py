"""A validate step: its rendered value must match its JSON Schema. With `retry`, a
value that does not runs the named llm step again, told what was wrong, until it
validates or the llm step has had `max_attempts` attempts."""

from __future__ import annotations

import json
from typing import Any

from agents.spec import describe, schema_error
from agents.steps.context import Attempt, ExecutionContext, StepError
from agents.steps.definitions import Retry, ValidateStep
from agents.templating import render

VALIDATION_FEEDBACK = (
    "Your previous answer was:\n{answer}\n\nIt did not validate: {problem}\nAnswer again, correctly."
)


def perform(step: ValidateStep, attempt: Attempt, execution: ExecutionContext) -> Any:
    while True:
        # Rendered again each time: a retried llm step changes what the value says.
        value = render(step.value, execution.template_context(attempt.scope))
        problem = schema_error(step.schema, value)
        if problem is None:
            return value
        if step.retry is None:
            raise StepError(f"validation failed at {describe(problem)}")
        retry_once(step.retry, problem, attempt, execution)


def retry_once(retry: Retry, problem: tuple[str, str], attempt: Attempt, execution: ExecutionContext) -> None:
    target = execution.step_named(retry.step)
    record = execution.state.steps[target.id + attempt.scope.suffix]
    if record.attempt >= retry.max_attempts:
        attempts = f"{record.attempt} attempts of {target.id}"
        raise StepError(f"validation failed at {describe(problem)} after {attempts}")
    answer = json.dumps(record.output) if not isinstance(record.output, str) else record.output
    feedback = VALIDATION_FEEDBACK.format(answer=answer, problem=describe(problem))
    execution.run_step(target, attempt.scope, rerun_feedback=feedback)
