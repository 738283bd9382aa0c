"""Executing a run: steps in order, each recorded as events, resumable after a crash.

Guarantees:
- One executor per run at a time: a PostgreSQL advisory lock (tenant and run)
  held by the task's connection, released when the task ends or its process
  dies (agents/locks.py). A duplicate delivery finds the lock taken, or the run
  finished, and does nothing. An executor whose session was ended (by the
  sweeper, which presumed it dead) records nothing more.
- While it holds the run, the executor keeps its heartbeat (agents/heartbeat.py);
  the sweeper resumes a `running` run whose heartbeat stopped (agents/sweeper.py).
- A step that succeeded is never executed again; a resumed run reads its
  output from the events. A tool call whose outcome was not recorded is made
  again with the same idempotency key and the same (recorded) input, so the
  receiving end applies it once.
- A failure (or cancellation) compensates the side-effecting tool calls that
  may have had their effect, latest first, each once; the run ends
  failed / cancelled (nothing to undo), compensated, or compensation_failed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from agents import events
from agents.events import (
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    EventData,
    EventTooLargeError,
    EventType,
    Outcome,
    RunFinished,
    RunState,
    StepFailed,
    StepRecord,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    ToolCall,
    append,
    state_of,
)
from agents.heartbeat import beating
from agents.locks import LockLostError, RunLock, run_lock
from agents.models import Run, RunEvent
from agents.runtime import Runtime, runtime
from agents.spec import parse_workflow
from agents.steps import dispatch, tool
from agents.steps.context import Attempt, Budget, Scope, StepError, StepFailedError
from agents.steps.definitions import Step, walk_steps
from agents.templating import TemplateError, render
from agents.tools.invoke import ToolCallError
from agents.tools.manifests import load_registry
from capacity import state as capacity_state
from gateway.errors import GatewayError
from tenants.context import current_schema_name
from tenants.models import ApiKey
from tenants.selectors import usable_api_key_by_id

logger = logging.getLogger(__name__)


class RunCancelledError(Exception):
    pass


def execute_run(run_id: int) -> None:
    """Execute (or resume) the run; a no-op if it is finished or executing elsewhere."""
    with run_lock(run_id) as lock:
        if lock is None:
            logger.info("run %s is executing elsewhere; this delivery does nothing", run_id)
            return
        run = Run.objects.filter(pk=run_id).first()
        if run is None or run.is_finished:
            return
        state = state_of(run)
        append(run, events.RUN_RESUMED if state.started else events.RUN_STARTED)
        state.started = True
        with beating(run_id):
            try:
                Execution(run, state, runtime(), lock).execute()
            except LockLostError:
                logger.warning("run %s: this executor's session was ended; it stops here", run_id)


class Execution:
    """One pass of an executor over a run: the run loop, its budgets, the events it
    records, and the compensation of a run that fails. Each step kind's work is
    done by its handler in agents/steps/."""

    def __init__(self, run: Run, state: RunState, rt: Runtime, lock: RunLock) -> None:
        self.run = run
        self.lock = lock
        self.state = state
        self.rt = rt
        self.workflow = parse_workflow(run.spec)
        self.registry = load_registry()
        self.context: dict[str, Any] = {"input": run.input, "steps": {}, "run": {"id": run.pk}}
        self.steps_by_id = {step.id: step for step in walk_steps(self.workflow.steps)}
        self.budget = Budget.of({**settings.AGENT_DEFAULT_BUDGET, **self.workflow.budget})
        started = run.started_at.timestamp() if run.started_at else time.time()
        self.deadline = started + self.budget.max_seconds
        self.schema = current_schema_name()
        self.last_output: Any = None
        self.replaying = run.replay_of_id is not None
        self.recorded_models = recorded_models(run.replay_of_id) if run.replay_of_id else {}

    def execute(self) -> None:
        try:
            self.run_steps(self.workflow.steps, Scope())
            output = self.final_output()
        except LockLostError:
            raise
        except RunCancelledError:
            self.finish_cancelled()
        except (StepError, StepFailedError) as error:
            self.finish_failed(str(error))
        except Exception as error:  # a bug or an environment failure must not leave the run `running`
            logger.exception("run %s failed unexpectedly", self.run.pk)
            self.finish_failed(clean_message(f"internal error: {type(error).__name__}: {error}"))
        else:
            self.record(RunFinished(outcome=EventType.RUN_SUCCEEDED, output=output), key="run.finished")

    def final_output(self) -> Any:
        if self.workflow.output is None:
            return self.last_output
        try:
            output = render(self.workflow.output.value, self.context)
            events.check_event_size({"output": output}, "the run's output")
        except TemplateError as error:
            raise StepError(f"output: {error.message}") from None
        except EventTooLargeError as error:
            raise StepError(f"output: {error}") from None
        return output

    def record(self, event: EventData, step_id: str = "", key: str = "") -> RunEvent | None:
        """Append `event` (None if its key is recorded already); the one way events are written,
        and only while this executor's session holds the run."""
        self.lock.check()
        return append(self.run, event.type, step_id=step_id, key=key, data=event.data())

    def template_context(self, scope: Scope) -> dict[str, Any]:
        return {**self.context, **scope.variables}

    def step_named(self, step_id: str) -> Step:
        return self.steps_by_id[step_id]

    def api_key(self) -> ApiKey:
        api_key = usable_api_key_by_id(self.run.api_key_id) if self.run.api_key_id else None
        if api_key is None:
            raise StepError("the API key that started this run is no longer usable")
        return api_key

    # Steps

    def run_steps(self, steps: tuple[Step, ...], scope: Scope) -> None:
        for step in steps:
            self.run_step(step, scope)

    def run_step(self, step: Step, scope: Scope, rerun_feedback: str | None = None) -> Any:
        """The step's output: recorded already, or from executing it (again, with
        `rerun_feedback`, when a validation asks)."""
        step_id = step.id + scope.suffix
        record = self.state.steps.get(step_id)
        if record is not None and rerun_feedback is None and record.status != "started":
            return self.recorded_outcome(step, record, scope)
        if step.optional and record is None and capacity_state.current().effects.skip_optional_steps:
            return self.skip(step, step_id, scope)
        self.check_cancelled()
        self.check_budget(step_id)
        number = (record.attempt + 1 if rerun_feedback is not None else record.attempt) if record else 1
        attempt = Attempt(step_id, number, scope, self.template_context(scope), rerun_feedback)
        self.record_start(step, attempt)
        output = self.perform(step, attempt)
        self.record_success(attempt, output)
        return self.remember(step, output, scope)

    def skip(self, step: Step, step_id: str, scope: Scope) -> Any:
        """An optional step not run at this degrade level: its output is null."""
        reason = f"optional step skipped: the platform is {capacity_state.current().level.value}"
        self.record(StepSkipped(reason=reason), step_id, key=f"step.skipped:{step_id}")
        self.state.steps[step_id] = StepRecord("skipped")
        return self.remember(step, None, scope)

    def recorded_outcome(self, step: Step, record: StepRecord, scope: Scope) -> Any:
        if record.status == "failed":
            raise StepFailedError(record.error)
        return self.remember(step, record.output, scope)

    def record_start(self, step: Step, attempt: Attempt) -> None:
        started = StepStarted(kind=step.kind.value, attempt=attempt.number)
        key = f"step.started:{attempt.step_id}#{attempt.number}"
        if self.record(started, attempt.step_id, key=key) is not None:
            self.state.steps_executed += 1
        self.state.steps[attempt.step_id] = StepRecord(attempt=attempt.number)

    def perform(self, step: Step, attempt: Attempt) -> Any:
        """The handler's output; a failure is recorded, and raised as StepFailedError."""
        try:
            output = dispatch.perform(step, attempt, self)
            events.check_event_size(StepSucceeded(output=output).data(), f"the output of {attempt.step_id}")
            return output
        except (RunCancelledError, LockLostError):
            raise
        except StepFailedError as inner:
            self.record_failure(attempt, str(inner))
            raise
        except (StepError, TemplateError, GatewayError, ToolCallError, EventTooLargeError) as error:
            message = clean_message(f"{attempt.step_id}: {error_message(error)}")
        except SoftTimeLimitExceeded:
            message = f"{attempt.step_id}: the run's time limit (its budget's max_seconds) was reached"
        except Exception as error:  # e.g. ZeroDivisionError in `{{ input.a / input.b }}`
            self.lock.check()  # a database error because the sweeper ended this executor's session
            logger.warning("run %s: step %s raised unexpectedly", self.run.pk, attempt.step_id, exc_info=True)
            message = clean_message(f"{attempt.step_id}: {type(error).__name__}: {error}")
        self.record_failure(attempt, message)
        raise StepFailedError(message) from None

    def record_success(self, attempt: Attempt, output: Any) -> None:
        succeeded = StepSucceeded(output=output, attempt=attempt.number)
        self.record(succeeded, attempt.step_id, key=f"step.outcome:{attempt.step_id}#{attempt.number}")
        self.state.steps[attempt.step_id] = StepRecord("succeeded", output, attempt=attempt.number)

    def record_failure(self, attempt: Attempt, message: str) -> None:
        failed = StepFailed(error=message, attempt=attempt.number)
        self.record(failed, attempt.step_id, key=f"step.outcome:{attempt.step_id}#{attempt.number}")
        self.state.steps[attempt.step_id] = StepRecord("failed", error=message, attempt=attempt.number)

    def remember(self, step: Step, output: Any, scope: Scope) -> Any:
        if not scope.suffix:
            self.context["steps"][step.id] = {"output": output}
            self.last_output = output
        return output

    # Limits

    def check_cancelled(self) -> None:
        if self.state.cancel_requested or self.run.events.filter(type=events.RUN_CANCEL_REQUESTED).exists():
            self.state.cancel_requested = True
            raise RunCancelledError

    def check_budget(self, step_id: str) -> None:
        if self.state.steps_executed >= self.budget.max_steps:
            raise StepFailedError(f"{step_id}: the run's budget of {self.budget.max_steps} steps is spent")
        if time.time() > self.deadline:
            raise StepFailedError(
                f"{step_id}: the run's time budget of {self.budget.max_seconds:g}s is spent"
            )

    # Ending

    def finish_failed(self, error: str) -> None:
        outcome = self.compensate()
        final = {
            None: EventType.RUN_FAILED,
            True: EventType.RUN_COMPENSATED,
            False: EventType.RUN_COMPENSATION_FAILED,
        }[outcome]
        self.record(RunFinished(outcome=final, error=error), key="run.finished")

    def finish_cancelled(self) -> None:
        outcome = self.compensate()
        final = EventType.RUN_COMPENSATION_FAILED if outcome is False else EventType.RUN_CANCELLED
        self.record(RunFinished(outcome=final, error="cancelled"), key="run.finished")

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

    def compensate_call(self, call: ToolCall) -> Outcome:
        self.record(CompensationStarted(), call.step_id, key=f"compensation.started:{call.step_id}")
        key = f"compensation.outcome:{call.step_id}"
        try:
            output = tool.undo(call, self)
        except Exception as error:  # ToolCallError, TemplateError, or anything unexpected
            self.record(CompensationFailed(error=self.compensation_error(call, error)), call.step_id, key=key)
            self.state.compensations[call.step_id] = "failed"
            return "failed"
        self.record(CompensationSucceeded(output=output), call.step_id, key=key)
        self.state.compensations[call.step_id] = "succeeded"
        return "succeeded"

    def compensation_error(self, call: ToolCall, error: Exception) -> str:
        message = error_message(error)
        if not isinstance(error, (ToolCallError, TemplateError)):
            logger.warning("run %s: compensating %s raised", self.run.pk, call.step_id, exc_info=True)
            message = f"{type(error).__name__}: {message}"
        return clean_message(message)


def clean_message(message: str, limit: int = 2000) -> str:
    """An error message fit for an event and the run row: no NUL (PostgreSQL text
    refuses it), bounded length."""
    message = message.replace("\x00", "\\x00")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def error_message(error: Exception) -> str:
    if isinstance(error, GatewayError):
        return f"{error.code or error.type}: {error.message}"
    return str(getattr(error, "message", None) or error)


def recorded_models(run_id: int) -> dict[str, str]:
    """The model that answered each llm step of a recorded run (its last call)."""
    usage = RunEvent.objects.filter(run_id=run_id, type=events.LLM_USAGE).order_by("seq")
    return {event.step_id: event.data["model"] for event in usage}
