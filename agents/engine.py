"""Executing a run: steps in order, each recorded as events, resumable after a crash.

Guarantees:
- One executor per run at a time: a PostgreSQL advisory lock (tenant and run)
  held by the task's connection, released when the task ends or its process
  dies. A duplicate delivery finds the lock taken, or the run finished, and
  does nothing.
- A step that succeeded is never executed again; a resumed run reads its
  output from the events. A tool call whose outcome was not recorded is made
  again with the same idempotency key and the same (recorded) input, so the
  receiving end applies it once.
- A failure (or cancellation) compensates the side-effecting tool calls that
  may have had their effect, latest first, each once; the run ends
  failed / cancelled (nothing to undo), compensated, or compensation_failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection

from agents import events
from agents.events import RunState, StepRecord, ToolCall, append, state_of
from agents.models import Run, RunEvent
from agents.runtime import Runtime, runtime
from agents.spec import describe, schema_error, walk
from agents.templating import TemplateError, evaluate, render
from agents.tools.invoke import ToolCallError, invoke
from agents.tools.manifests import ToolManifest, load_registry
from gateway.errors import GatewayError
from tenants.context import current_schema_name
from tenants.models import ApiKey

logger = logging.getLogger(__name__)
MAX_MAP_ITEMS = 100
VALIDATION_FEEDBACK = (
    "Your previous answer was:\n{answer}\n\nIt did not validate: {problem}\nAnswer again, correctly."
)


class StepError(Exception):
    """A step failed; the run fails (and compensates)."""


class StepFailedError(Exception):
    """A step failed and its failure is recorded; the message names the innermost step."""


class RunCancelledError(Exception):
    pass


@contextmanager
def run_lock(run_id: int) -> Iterator[bool]:
    """True if this connection now executes the run; the lock is per tenant schema and run."""
    digest = hashlib.blake2b(f"agents-run:{current_schema_name()}:{run_id}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def execute_run(run_id: int) -> None:
    """Execute (or resume) the run; a no-op if it is finished or executing elsewhere."""
    with run_lock(run_id) as acquired:
        if not acquired:
            logger.info("run %s is executing elsewhere; this delivery does nothing", run_id)
            return
        run = Run.objects.filter(pk=run_id).first()
        if run is None or run.is_finished:
            return
        state = state_of(run)
        append(run, events.RUN_RESUMED if state.started else events.RUN_STARTED)
        state.started = True
        Execution(run, state, runtime()).execute()


class Execution:
    def __init__(self, run: Run, state: RunState, rt: Runtime) -> None:
        self.run = run
        self.state = state
        self.rt = rt
        self.spec = run.spec
        self.registry = load_registry()
        self.context: dict[str, Any] = {"input": run.input, "steps": {}, "run": {"id": run.pk}}
        self.steps_by_id = {located.step["id"]: located.step for located in walk(self.spec["steps"])}
        budget = {**settings.AGENT_DEFAULT_BUDGET, **self.spec.get("budget", {})}
        self.max_steps = int(budget["max_steps"])
        self.max_seconds = float(budget["max_seconds"])
        self.max_cost = Decimal(str(budget["max_cost_usd"])) if "max_cost_usd" in budget else None
        self.deadline = (run.started_at.timestamp() if run.started_at else time.time()) + self.max_seconds
        self.schema = current_schema_name()
        self.last_output: Any = None
        self.replaying = run.replay_of_id is not None
        self.recorded_models = recorded_models(run.replay_of_id) if run.replay_of_id else {}

    def execute(self) -> None:
        try:
            self.run_steps(self.spec["steps"], {})
            output = self.final_output()
        except RunCancelledError:
            self.finish_cancelled()
        except (StepError, StepFailedError) as error:
            self.finish_failed(str(error))
        except Exception as error:  # a bug or an environment failure must not leave the run `running`
            logger.exception("run %s failed unexpectedly", self.run.pk)
            self.finish_failed(clean_message(f"internal error: {type(error).__name__}: {error}"))
        else:
            append(self.run, "run.succeeded", key="run.finished", data={"output": output})

    def final_output(self) -> Any:
        if "output" not in self.spec:
            return self.last_output
        try:
            return render(self.spec["output"], self.context)
        except TemplateError as error:
            raise StepError(f"output: {error.message}") from None

    # Steps

    def run_steps(self, steps: list[dict[str, Any]], scope: dict[str, Any]) -> None:
        for step in steps:
            self.run_step(step, scope)

    def run_step(self, step: dict[str, Any], scope: dict[str, Any], rerun_feedback: str | None = None) -> Any:
        step_id = step["id"] + scope.get("suffix", "")
        record = self.state.steps.get(step_id)
        if record is not None and rerun_feedback is None:
            if record.status == "succeeded":
                return self.remember(step, step_id, record.output, scope)
            if record.status == "failed":
                raise StepFailedError(record.error)
        self.check_cancelled()
        self.check_budget(step_id)
        attempt = (record.attempt + 1 if rerun_feedback is not None else record.attempt) if record else 1
        started = append(
            self.run,
            events.STEP_STARTED,
            step_id=step_id,
            key=f"step.started:{step_id}#{attempt}",
            data={"kind": step["kind"], "attempt": attempt},
        )
        if started is not None:
            self.state.steps_executed += 1
        self.state.steps[step_id] = StepRecord(attempt=attempt)
        try:
            output = self.perform(
                step, step_id, {**self.context, **scope.get("variables", {})}, scope, rerun_feedback
            )
        except RunCancelledError:
            raise
        except StepFailedError as inner:
            self.record_failure(step_id, attempt, str(inner))
            raise
        except (StepError, TemplateError, GatewayError, ToolCallError) as error:
            message = clean_message(f"{step_id}: {error_message(error)}")
            self.record_failure(step_id, attempt, message)
            raise StepFailedError(message) from None
        except Exception as error:  # e.g. ZeroDivisionError in `{{ input.a / input.b }}`
            logger.warning("run %s: step %s raised unexpectedly", self.run.pk, step_id, exc_info=True)
            message = clean_message(f"{step_id}: {type(error).__name__}: {error}")
            self.record_failure(step_id, attempt, message)
            raise StepFailedError(message) from None
        append(
            self.run,
            events.STEP_SUCCEEDED,
            step_id=step_id,
            key=f"step.outcome:{step_id}#{attempt}",
            data={"output": output, "attempt": attempt},
        )
        self.state.steps[step_id] = StepRecord("succeeded", output, attempt=attempt)
        return self.remember(step, step_id, output, scope)

    def record_failure(self, step_id: str, attempt: int, message: str) -> None:
        append(
            self.run,
            events.STEP_FAILED,
            step_id=step_id,
            key=f"step.outcome:{step_id}#{attempt}",
            data={"error": message, "attempt": attempt},
        )
        self.state.steps[step_id] = StepRecord("failed", error=message, attempt=attempt)

    def remember(self, step: dict[str, Any], step_id: str, output: Any, scope: dict[str, Any]) -> Any:
        if not scope.get("suffix"):
            self.context["steps"][step["id"]] = {"output": output}
            self.last_output = output
        return output

    def perform(
        self,
        step: dict[str, Any],
        step_id: str,
        context: dict[str, Any],
        scope: dict[str, Any],
        feedback: str | None,
    ) -> Any:
        kind = step["kind"]
        if kind == "llm":
            return self.perform_llm(step, step_id, context, feedback)
        if kind == "tool":
            return self.perform_tool(step, step_id, context)
        if kind == "condition":
            taken = bool(evaluate(step["if"], context))
            self.run_steps(step["then"] if taken else step.get("else", []), scope)
            return {"branch": "then" if taken else "else"}
        if kind == "map":
            return self.perform_map(step, step_id, context, scope)
        return self.perform_validate(step, step_id, context, scope)

    def perform_llm(
        self, step: dict[str, Any], step_id: str, context: dict[str, Any], feedback: str | None
    ) -> Any:
        if self.max_cost is not None and self.state.cost_usd >= self.max_cost:
            raise StepError(f"the run's cost budget of {self.max_cost} USD is spent")
        messages = []
        if "system" in step:
            messages.append({"role": "system", "content": str(render(step["system"], context))})
        prompt = str(render(step["prompt"], context))
        messages.append({"role": "user", "content": f"{prompt}\n\n{feedback}" if feedback else prompt})
        model = self.recorded_models.get(step_id, step.get("model", "auto"))
        body: dict[str, Any] = {"model": model, "messages": messages}
        for name in ("max_tokens", "temperature"):
            if name in step:
                body[name] = step[name]
        if "output_schema" in step:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": step["id"], "schema": step["output_schema"]},
            }
        completion = self.rt.run(self.rt.gateway.chat(self.api_key(), body, f"req_{uuid.uuid4().hex}"))
        append(
            self.run,
            events.LLM_USAGE,
            step_id=step_id,
            data={
                "request_id": completion.request_id,
                "model": completion.model_id,
                "tier": completion.tier,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "cost_usd": str(completion.cost_usd),
            },
        )
        self.state.cost_usd += completion.cost_usd
        if "output_schema" not in step:
            return completion.content
        try:
            output = json.loads(completion.content)
        except ValueError:
            raise StepError(f"the model's answer is not JSON: {completion.content[:200]!r}") from None
        problem = schema_error(step["output_schema"], output)
        if problem is not None:
            raise StepError(f"the model's answer does not match output_schema at {describe(problem)}")
        return output

    def api_key(self) -> ApiKey:
        keys = ApiKey.objects.select_related("tenant", "tenant__plan")
        api_key = keys.filter(pk=self.run.api_key_id).first() if self.run.api_key_id else None
        if api_key is None or not api_key.is_usable() or not api_key.tenant.is_active:
            raise StepError("the API key that started this run is no longer usable")
        return api_key

    def perform_tool(self, step: dict[str, Any], step_id: str, context: dict[str, Any]) -> Any:
        manifest = self.registry.get(step["tool"])
        if manifest is None:
            raise StepError(f"no verified manifest for tool `{step['tool']}`")
        call = self.state.tool_calls.get(step_id)
        if call is None:
            call = ToolCall(
                step_id,
                manifest.name,
                render(step.get("input", {}), context),
                f"{self.schema}:run-{self.run.pk}:{step_id}",
            )
            append(
                self.run,
                events.TOOL_REQUESTED,
                step_id=step_id,
                key=f"tool.requested:{step_id}",
                data={
                    "tool": manifest.name,
                    "version": manifest.version,
                    "side_effect": manifest.side_effect,
                    "input": call.input,
                    "idempotency_key": call.idempotency_key,
                },
            )
            self.state.tool_calls[step_id] = call
        elif call.outcome == "succeeded":
            # Killed after recording the call's outcome, before the step's: the call is
            # done, and its recorded output is the step's (calling again could repeat it).
            return call.output
        elif call.outcome == "failed":
            raise ToolCallError(call.error or f"{manifest.name} failed", applied=call.applied)
        try:
            output = self.call_tool(manifest, call.input, call.idempotency_key, step_id)
        except ToolCallError as error:
            call.outcome, call.applied, call.error = "failed", error.applied, error.message
            append(
                self.run,
                events.TOOL_FAILED,
                step_id=step_id,
                key=f"tool.outcome:{step_id}",
                data={"error": error.message, "applied": error.applied},
            )
            raise
        call.outcome, call.output = "succeeded", output
        append(
            self.run,
            events.TOOL_SUCCEEDED,
            step_id=step_id,
            key=f"tool.outcome:{step_id}",
            data={"output": output},
        )
        return output

    def call_tool(self, manifest: ToolManifest, tool_input: Any, idempotency_key: str, step_id: str) -> Any:
        if self.run.replay_of_id is not None:
            return recorded_tool_output(self.run.replay_of_id, step_id)
        return self.rt.run(
            invoke(manifest, tool_input, idempotency_key, breaker=self.rt.breaker, tenant_schema=self.schema)
        )

    def perform_map(
        self, step: dict[str, Any], step_id: str, context: dict[str, Any], scope: dict[str, Any]
    ) -> Any:
        items = evaluate(step["over"], context)
        if not isinstance(items, list):
            raise StepError(f"`over` must give a list, not {type(items).__name__}")
        limit = step.get("max_items", MAX_MAP_ITEMS)
        if len(items) > limit:
            raise StepError(f"`over` gave {len(items)} items; at most {limit} are allowed")
        outputs = []
        for index, item in enumerate(items):
            inner = {
                "suffix": f"{scope.get('suffix', '')}[{index}]",
                "variables": {**scope.get("variables", {}), "item": item, "index": index},
            }
            outputs.append(self.run_step(step["step"], inner))
        return outputs

    def perform_validate(
        self, step: dict[str, Any], step_id: str, context: dict[str, Any], scope: dict[str, Any]
    ) -> Any:
        retry = step.get("retry")
        while True:
            value = render(step["value"], {**self.context, **scope.get("variables", {})})
            problem = schema_error(step["schema"], value)
            if problem is None:
                return value
            if retry is None:
                raise StepError(f"validation failed at {describe(problem)}")
            target = self.steps_by_id[retry["step"]]
            record = self.state.steps[target["id"] + scope.get("suffix", "")]
            if record.attempt >= retry.get("max_attempts", 2):
                attempts = f"{record.attempt} attempts of {target['id']}"
                raise StepError(f"validation failed at {describe(problem)} after {attempts}")
            answer = json.dumps(record.output) if not isinstance(record.output, str) else record.output
            feedback = VALIDATION_FEEDBACK.format(answer=answer, problem=describe(problem))
            self.run_step(target, scope, rerun_feedback=feedback)

    # Limits

    def check_cancelled(self) -> None:
        if self.state.cancel_requested or self.run.events.filter(type=events.RUN_CANCEL_REQUESTED).exists():
            self.state.cancel_requested = True
            raise RunCancelledError

    def check_budget(self, step_id: str) -> None:
        if self.state.steps_executed >= self.max_steps:
            raise StepFailedError(f"{step_id}: the run's budget of {self.max_steps} steps is spent")
        if time.time() > self.deadline:
            raise StepFailedError(f"{step_id}: the run's time budget of {self.max_seconds:g}s is spent")

    # Ending

    def finish_failed(self, error: str) -> None:
        outcome = self.compensate()
        final = {None: "run.failed", True: "run.compensated", False: "run.compensation_failed"}[outcome]
        append(self.run, final, key="run.finished", data={"error": error})

    def finish_cancelled(self) -> None:
        outcome = self.compensate()
        final = "run.compensation_failed" if outcome is False else "run.cancelled"
        append(self.run, final, key="run.finished", data={"error": "cancelled"})

    def to_compensate(self) -> list[ToolCall]:
        """Side-effecting calls whose effect may have happened, latest first (none
        in a replay, whose tool outputs come from the record)."""
        if self.replaying:
            return []
        calls = []
        for call in reversed(self.state.tool_calls.values()):
            manifest = self.registry.get(call.tool)
            if manifest is not None and not manifest.has_side_effect:
                continue
            if call.outcome == "succeeded" or call.applied != "no":
                calls.append(call)
        return calls

    def compensate(self) -> bool | None:
        """None: nothing to undo; True: all undone; False: some compensation failed."""
        calls = self.to_compensate()
        if not calls:
            return None
        succeeded = True
        for call in calls:
            done = self.state.compensations.get(call.step_id)
            if done is None:
                done = self.compensate_call(call)
            succeeded = succeeded and done == "succeeded"
        return succeeded

    def compensate_call(self, call: ToolCall) -> str:
        manifest = self.registry.get(call.tool)
        compensation = manifest.compensation if manifest else None
        tool = self.registry.get(compensation["tool"]) if compensation else None
        append(
            self.run,
            events.COMPENSATION_STARTED,
            step_id=call.step_id,
            key=f"compensation.started:{call.step_id}",
        )
        key = f"compensation.outcome:{call.step_id}"
        try:
            if compensation is None or tool is None:
                raise ToolCallError(f"{call.tool} has no usable compensation", applied="no")
            tool_input = render(
                compensation.get("input", "{{ input }}"), {"input": call.input, "output": call.output}
            )
            output = self.rt.run(
                invoke(
                    tool,
                    tool_input,
                    f"{call.idempotency_key}:compensate",
                    breaker=self.rt.breaker,
                    tenant_schema=self.schema,
                )
            )
        except Exception as error:  # ToolCallError, TemplateError, or anything unexpected
            message = error_message(error)
            if not isinstance(error, (ToolCallError, TemplateError)):
                logger.warning("run %s: compensating %s raised", self.run.pk, call.step_id, exc_info=True)
                message = f"{type(error).__name__}: {message}"
            append(
                self.run,
                events.COMPENSATION_FAILED,
                step_id=call.step_id,
                key=key,
                data={"error": clean_message(message)},
            )
            self.state.compensations[call.step_id] = "failed"
            return "failed"
        append(
            self.run, events.COMPENSATION_SUCCEEDED, step_id=call.step_id, key=key, data={"output": output}
        )
        self.state.compensations[call.step_id] = "succeeded"
        return "succeeded"


def clean_message(message: str, limit: int = 2000) -> str:
    """An error message fit for an event and the run row: no NUL (PostgreSQL text
    refuses it), bounded length."""
    message = message.replace("\x00", "\\x00")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def error_message(error: Exception) -> str:
    if isinstance(error, GatewayError):
        return f"{error.code or error.type}: {error.message}"
    return str(getattr(error, "message", None) or error)


def recorded_tool_output(run_id: int, step_id: str) -> Any:
    """A replayed run's tool output: the one the original run recorded."""
    event = RunEvent.objects.filter(run_id=run_id, step_id=step_id, type=events.TOOL_SUCCEEDED).first()
    if event is None:
        raise ToolCallError(f"the recorded run has no output of {step_id} to replay", applied="no")
    return event.data.get("output")


def recorded_models(run_id: int) -> dict[str, str]:
    """The model that answered each llm step of a recorded run (its last call)."""
    usage = RunEvent.objects.filter(run_id=run_id, type=events.LLM_USAGE).order_by("seq")
    return {event.step_id: event.data["model"] for event in usage}
