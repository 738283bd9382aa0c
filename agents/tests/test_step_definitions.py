"""Typed steps and events: a compiled spec parses into one class per step kind with
the defaults the executor relies on, and recorded events decode into their classes
(older events without newer fields included)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agents.events import (
    EventType,
    LlmUsage,
    RunFinished,
    StepStarted,
    ToolFailed,
    ToolRequested,
    decode,
)
from agents.models import RunEvent
from agents.spec import OutputTemplate, compile_spec, parse_workflow
from agents.steps.definitions import (
    ConditionStep,
    LlmStep,
    MapStep,
    Retry,
    StepKind,
    ToolStep,
    ValidateStep,
    walk_steps,
)

EVERY_KIND: dict[str, Any] = {
    "name": "every-kind",
    "steps": [
        {"id": "draft", "kind": "llm", "prompt": "Write {{ input.text }}"},
        {"id": "fetch", "kind": "tool", "tool": "http"},
        {"id": "empty", "kind": "tool", "tool": "http", "input": None},
        {
            "id": "check",
            "kind": "validate",
            "value": "{{ steps.draft.output }}",
            "schema": {},
            "retry": {"step": "draft"},
        },
        {
            "id": "route",
            "kind": "condition",
            "if": "input.urgent",
            "then": [
                {
                    "id": "each",
                    "kind": "map",
                    "over": "{{ input.items }}",
                    "step": {"id": "tag", "kind": "llm", "prompt": "Tag"},
                }
            ],
        },
    ],
    "output": None,
}


def test_a_compiled_spec_parses_into_one_class_per_step_kind() -> None:
    workflow = parse_workflow(compile_spec(EVERY_KIND))

    draft, fetch, empty, check, route = workflow.steps
    assert isinstance(draft, LlmStep)
    assert draft == LlmStep(id="draft", prompt="Write {{ input.text }}")
    assert (draft.model, draft.system, draft.output_schema, draft.kind) == ("auto", None, None, StepKind.LLM)
    assert fetch == ToolStep(id="fetch", tool="http", input={})
    assert empty == ToolStep(id="empty", tool="http", input=None)
    assert check == ValidateStep(
        id="check", value="{{ steps.draft.output }}", schema={}, retry=Retry(step="draft", max_attempts=2)
    )
    assert isinstance(route, ConditionStep)
    assert (route.condition, route.otherwise) == ("input.urgent", ())
    (each,) = route.then
    assert each == MapStep(
        id="each", over="{{ input.items }}", step=LlmStep(id="tag", prompt="Tag"), max_items=100
    )
    assert workflow.output == OutputTemplate(None)
    assert workflow.budget == {}


def test_walking_typed_steps_visits_nested_ones_in_execution_order() -> None:
    workflow = parse_workflow(compile_spec(EVERY_KIND))

    assert [step.id for step in walk_steps(workflow.steps)] == [
        "draft", "fetch", "empty", "check", "route", "each", "tag"
    ]  # fmt: skip


def test_a_spec_without_output_has_none() -> None:
    spec = compile_spec({"name": "plain", "steps": [{"id": "a", "kind": "llm", "prompt": "x"}]})

    assert parse_workflow(spec).output is None


def event(type: str, data: dict[str, Any]) -> RunEvent:
    return RunEvent(seq=1, type=type, step_id="a", key="k", data=data)


def test_recorded_events_decode_into_their_classes() -> None:
    usage: dict[str, Any] = {
        "request_id": "req_1",
        "model": "m",
        "tier": 1,
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cost_usd": "0.0001",
    }
    requested: dict[str, Any] = {
        "tool": "http",
        "version": "1",
        "side_effect": "none",
        "input": {},
        "idempotency_key": "k",
    }

    assert decode(event("llm.usage", usage)) == LlmUsage(**{**usage, "cost_usd": Decimal("0.0001")})
    assert decode(event("tool.call.requested", requested)) == ToolRequested(**requested)
    assert decode(event("run.compensated", {"error": "e"})) == RunFinished(
        outcome=EventType.RUN_COMPENSATED, error="e"
    )
    assert decode(event("run.queued", {"input": {}})) is None


def test_events_recorded_before_a_field_existed_decode_with_its_default() -> None:
    assert decode(event("step.started", {"kind": "llm"})) == StepStarted(kind="llm", attempt=1)
    assert decode(event("tool.call.failed", {"error": "boom"})) == ToolFailed(error="boom", applied="unknown")


def test_event_data_is_written_as_before() -> None:
    usage = LlmUsage(
        request_id="r", model="m", tier=2, prompt_tokens=1, completion_tokens=2, cost_usd=Decimal("0.5")
    )

    assert usage.data() == {
        "request_id": "r",
        "model": "m",
        "tier": 2,
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "cost_usd": "0.5",
    }
    assert RunFinished(outcome=EventType.RUN_SUCCEEDED, output=None).data() == {"output": None}
    assert RunFinished(outcome=EventType.RUN_FAILED, error="e").data() == {"error": "e"}
    assert RunFinished(outcome=EventType.RUN_FAILED, error="e").type == "run.failed"
