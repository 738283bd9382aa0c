"""A tool step: one call of a tool with a verified manifest, under an idempotency
key of the tenant, run and step. The request (with its rendered input) is recorded
before the call and its outcome after, so a resumed run never calls again a tool
whose outcome it knows; a replay takes the recorded run's output instead of calling.
"""

from __future__ import annotations

from typing import Any

from agents.events import (
    EventTooLargeError,
    ToolCall,
    ToolFailed,
    ToolRequested,
    ToolSucceeded,
    check_event_size,
)
from agents.models import RunEvent
from agents.steps.context import Attempt, ExecutionContext, StepError
from agents.steps.definitions import ToolStep
from agents.templating import render
from agents.tools.invoke import ToolCallError, invoke
from agents.tools.manifests import ToolManifest
from tenants.selectors import current_outbound_policy


def perform(step: ToolStep, attempt: Attempt, execution: ExecutionContext) -> Any:
    manifest = execution.registry.get(step.tool)
    if manifest is None:
        raise StepError(f"no verified manifest for tool `{step.tool}`")
    call = execution.state.tool_calls.get(attempt.step_id)
    if call is None:
        call = request(step, attempt, manifest, execution)
    elif call.outcome == "succeeded":
        # Killed after recording the call's outcome, before the step's: the call is
        # done, and its recorded output is the step's (calling again could repeat it).
        return call.output
    elif call.outcome == "failed":
        raise ToolCallError(call.error or f"{manifest.name} failed", applied=call.applied)
    return make_call(call, manifest, execution)


def request(
    step: ToolStep, attempt: Attempt, manifest: ToolManifest, execution: ExecutionContext
) -> ToolCall:
    """Record the call about to be made: its input, and its idempotency key."""
    step_id = attempt.step_id
    key = f"{execution.schema}:run-{execution.run.pk}:{step_id}"
    call = ToolCall(step_id, manifest.name, render(step.input, attempt.context), key)
    requested = ToolRequested(
        tool=manifest.name,
        version=manifest.version,
        side_effect=manifest.side_effect,
        input=call.input,
        idempotency_key=call.idempotency_key,
    )
    execution.record(requested, step_id, key=f"tool.requested:{step_id}")
    execution.state.tool_calls[step_id] = call
    return call


def make_call(call: ToolCall, manifest: ToolManifest, execution: ExecutionContext) -> Any:
    key = f"tool.outcome:{call.step_id}"
    try:
        output = checked(call_tool(manifest, call, execution), manifest)
    except ToolCallError as error:
        call.outcome, call.applied, call.error = "failed", error.applied, error.message
        execution.record(ToolFailed(error=error.message, applied=error.applied), call.step_id, key=key)
        raise
    call.outcome, call.output = "succeeded", output
    execution.record(ToolSucceeded(output=output), call.step_id, key=key)
    return output


def checked(output: Any, manifest: ToolManifest) -> Any:
    """The output, if a run event can hold it; a failure whose effect may have happened if not."""
    try:
        check_event_size(ToolSucceeded(output=output).data(), f"the output of {manifest.name}")
    except EventTooLargeError as error:
        raise ToolCallError(str(error), applied="unknown") from None
    return output


def call_tool(manifest: ToolManifest, call: ToolCall, execution: ExecutionContext) -> Any:
    replay_of_id = execution.run.replay_of_id
    if replay_of_id is not None:
        return recorded_tool_output(replay_of_id, call.step_id)
    rt = execution.rt
    return rt.run(
        invoke(
            manifest,
            call.input,
            call.idempotency_key,
            breaker=rt.breaker,
            tenant_schema=execution.schema,
            outbound=current_outbound_policy(),
        )
    )


def recorded_tool_output(run_id: int, step_id: str) -> Any:
    """A replayed run's tool output: the one the original run recorded."""
    event = RunEvent.objects.filter(run_id=run_id, step_id=step_id, type=ToolSucceeded.TYPE).first()
    if event is None:
        raise ToolCallError(f"the recorded run has no output of {step_id} to replay", applied="no")
    return event.data.get("output")


def undo(call: ToolCall, execution: ExecutionContext) -> Any:
    """Call the compensating tool of `call`'s manifest: its output, or ToolCallError
    (or TemplateError from its input template)."""
    manifest = execution.registry.get(call.tool)
    compensation = manifest.compensation if manifest else None
    tool = execution.registry.get(compensation["tool"]) if compensation else None
    if compensation is None or tool is None:
        raise ToolCallError(f"{call.tool} has no usable compensation", applied="no")
    tool_input = render(
        compensation.get("input", "{{ input }}"), {"input": call.input, "output": call.output}
    )
    rt = execution.rt
    key = f"{call.idempotency_key}:compensate"
    return rt.run(
        invoke(
            tool,
            tool_input,
            key,
            breaker=rt.breaker,
            tenant_schema=execution.schema,
            outbound=current_outbound_policy(),
        )
    )
