"""An llm step: one chat completion through the in-process gateway, its usage
recorded; with an `output_schema`, the answer is JSON that must match it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from agents.events import LlmUsage
from agents.spec import describe, schema_error
from agents.steps.context import Attempt, ExecutionContext, StepError
from agents.steps.definitions import LlmStep
from agents.templating import render


def perform(step: LlmStep, attempt: Attempt, execution: ExecutionContext) -> Any:
    check_cost_budget(execution)
    body = request_body(step, attempt, execution.recorded_models.get(attempt.step_id, step.model))
    rt = execution.rt
    completion = rt.run(rt.gateway.chat(execution.api_key(), body, f"req_{uuid.uuid4().hex}"))
    usage = LlmUsage(
        request_id=completion.request_id,
        model=completion.model_id,
        tier=completion.tier,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cost_usd=completion.cost_usd,
    )
    execution.record(usage, attempt.step_id)
    execution.state.cost_usd += completion.cost_usd
    if step.output_schema is None:
        return completion.content
    return structured_answer(step.output_schema, completion.content)


def request_body(step: LlmStep, attempt: Attempt, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages(step, attempt)}
    if step.max_tokens is not None:
        body["max_tokens"] = step.max_tokens
    if step.temperature is not None:
        body["temperature"] = step.temperature
    if step.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": step.id, "schema": step.output_schema},
        }
    return body


def messages(step: LlmStep, attempt: Attempt) -> list[dict[str, str]]:
    context = attempt.context
    system = [] if step.system is None else [{"role": "system", "content": str(render(step.system, context))}]
    prompt = str(render(step.prompt, attempt.context))
    content = f"{prompt}\n\n{attempt.feedback}" if attempt.feedback else prompt
    return [*system, {"role": "user", "content": content}]


def check_cost_budget(execution: ExecutionContext) -> None:
    max_cost = execution.budget.max_cost
    if max_cost is not None and execution.state.cost_usd >= max_cost:
        raise StepError(f"the run's cost budget of {max_cost} USD is spent")


def structured_answer(output_schema: dict[str, Any], content: str) -> Any:
    try:
        output = json.loads(content)
    except ValueError:
        raise StepError(f"the model's answer is not JSON: {content[:200]!r}") from None
    problem = schema_error(output_schema, output)
    if problem is not None:
        raise StepError(f"the model's answer does not match output_schema at {describe(problem)}")
    return output
