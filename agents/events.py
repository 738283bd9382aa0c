"""A run's append-only event log, and the run state folded from it.

`append` numbers events 1, 2, ... per run under a row lock on the run, and in
the same transaction updates the run row's projection (status, output,
totals), so a reader never sees one without the other. An event with a `key`
already recorded is not appended again: that is what makes a redelivered task
or a resumed run harmless.

`fold` rebuilds what a run has done from its events alone; the executor
resumes from it after a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from agents.models import FINAL_STATUSES, Run, RunEvent, RunStatus
from realtime import streams
from tenants.context import current_schema_name

logger = logging.getLogger(__name__)

# Event types
RUN_QUEUED = "run.queued"
RUN_STARTED = "run.started"
RUN_RESUMED = "run.resumed"
RUN_CANCEL_REQUESTED = "run.cancel_requested"
STEP_STARTED = "step.started"
STEP_SUCCEEDED = "step.succeeded"
STEP_FAILED = "step.failed"
LLM_USAGE = "llm.usage"
TOOL_REQUESTED = "tool.call.requested"
TOOL_SUCCEEDED = "tool.call.succeeded"
TOOL_FAILED = "tool.call.failed"
COMPENSATION_STARTED = "compensation.started"
COMPENSATION_SUCCEEDED = "compensation.succeeded"
COMPENSATION_FAILED = "compensation.failed"
FINAL_EVENTS = {
    "run.succeeded": RunStatus.SUCCEEDED,
    "run.failed": RunStatus.FAILED,
    "run.cancelled": RunStatus.CANCELLED,
    "run.compensated": RunStatus.COMPENSATED,
    "run.compensation_failed": RunStatus.COMPENSATION_FAILED,
}


def publish_event(schema_name: str, run: Run, event: RunEvent) -> None:
    """Send a committed event to the run's live stream (`/ws/v1/streams/<stream_id>`).

    Best effort: the events table is the record, and `GET /api/v1/runs/{id}/events`
    serves anything a subscriber missed; a Redis outage must not fail the run.
    """
    if not run.stream_id:
        return
    payload = {
        "type": event.type,
        "run_id": run.pk,
        "seq": event.seq,
        "step_id": event.step_id,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }
    try:
        streams.publish(schema_name, run.stream_id, payload, final=event.type in FINAL_EVENTS)
    except streams.StreamClosedError:
        pass
    except (redis.RedisError, OSError, ValueError):
        logger.warning("run %s event %s was not streamed", run.pk, event.seq, exc_info=True)


def append(
    run: Run, type: str, *, step_id: str = "", key: str = "", data: dict[str, Any] | None = None
) -> RunEvent | None:
    """Record one event (None if `key` was already recorded) and update the run's projection."""
    data = data or {}
    try:
        with transaction.atomic():
            locked = Run.objects.select_for_update().get(pk=run.pk)
            if locked.status in FINAL_STATUSES:
                return None  # a finished run's log is closed
            seq = (locked.events.aggregate(last=Max("seq"))["last"] or 0) + 1
            event = RunEvent.objects.create(
                run=locked, seq=seq, type=type, step_id=step_id, key=key or f"{type}#{seq}", data=data
            )
            changed = project(locked, event)
            if changed:
                locked.save(update_fields=[*changed, "updated_at"])
            for name in changed:
                setattr(run, name, getattr(locked, name))
    except IntegrityError:
        return None
    schema_name = current_schema_name()
    transaction.on_commit(lambda: publish_event(schema_name, run, event))
    return event


def project(run: Run, event: RunEvent) -> list[str]:
    """Apply `event` to the run row; the names of the fields it changed."""
    data = event.data
    if event.type in (RUN_STARTED, RUN_RESUMED):
        run.status = RunStatus.RUNNING
        if run.started_at is None:
            run.started_at = event.created_at
            return ["status", "started_at"]
        return ["status"]
    if event.type == STEP_STARTED:
        run.steps_executed += 1
        return ["steps_executed"]
    if event.type == LLM_USAGE:
        run.cost_usd += Decimal(data["cost_usd"])
        run.prompt_tokens += data["prompt_tokens"]
        run.completion_tokens += data["completion_tokens"]
        return ["cost_usd", "prompt_tokens", "completion_tokens"]
    if event.type in FINAL_EVENTS:
        run.status = FINAL_EVENTS[event.type]
        run.finished_at = timezone.now()
        run.output = data.get("output")
        run.error = data.get("error", "")
        return ["status", "finished_at", "output", "error"]
    return []


@dataclass
class StepRecord:
    status: str = "started"
    output: Any = None
    error: str = ""
    attempt: int = 0


@dataclass
class ToolCall:
    step_id: str
    tool: str
    input: Any
    idempotency_key: str
    outcome: str = ""  # "", "succeeded", "failed"
    applied: str = "unknown"  # whether a failed call may have had its effect: "unknown" or "no"
    output: Any = None
    error: str = ""


@dataclass
class RunState:
    """What the events say a run has done."""

    started: bool = False
    finished: bool = False
    cancel_requested: bool = False
    steps: dict[str, StepRecord] = field(default_factory=dict)
    tool_calls: dict[str, ToolCall] = field(default_factory=dict)  # by step id, in request order
    compensations: dict[str, str] = field(default_factory=dict)  # step id -> outcome
    cost_usd: Decimal = Decimal(0)
    steps_executed: int = 0

    def apply(self, event: RunEvent) -> None:
        data, step_id = event.data, event.step_id
        if event.type in (RUN_STARTED, RUN_RESUMED):
            self.started = True
        elif event.type == RUN_CANCEL_REQUESTED:
            self.cancel_requested = True
        elif event.type == STEP_STARTED:
            self.steps_executed += 1
            self.steps[step_id] = StepRecord(attempt=data.get("attempt", 1))
        elif event.type == STEP_SUCCEEDED:
            self.steps[step_id] = StepRecord("succeeded", data.get("output"), attempt=data.get("attempt", 1))
        elif event.type == STEP_FAILED:
            self.steps[step_id] = StepRecord(
                "failed", error=data.get("error", ""), attempt=data.get("attempt", 1)
            )
        elif event.type == LLM_USAGE:
            self.cost_usd += Decimal(data["cost_usd"])
        elif event.type == TOOL_REQUESTED:
            self.tool_calls[step_id] = ToolCall(step_id, data["tool"], data["input"], data["idempotency_key"])
        elif event.type in (TOOL_SUCCEEDED, TOOL_FAILED):
            call = self.tool_calls[step_id]
            call.outcome = "succeeded" if event.type == TOOL_SUCCEEDED else "failed"
            call.output = data.get("output")
            call.applied = data.get("applied", "unknown")
            call.error = data.get("error", "")
        elif event.type in (COMPENSATION_SUCCEEDED, COMPENSATION_FAILED):
            self.compensations[step_id] = event.type.rsplit(".", 1)[1]
        elif event.type in FINAL_EVENTS:
            self.finished = True


def fold(events: list[RunEvent]) -> RunState:
    state = RunState()
    for event in events:
        state.apply(event)
    return state


def state_of(run: Run) -> RunState:
    return fold(list(run.events.order_by("seq")))
