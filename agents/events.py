"""A run's append-only event log, and the run state folded from it.

`append` numbers events 1, 2, ... per run under a row lock on the run, and in
the same transaction updates the run row's projection (status, output,
totals), so a reader never sees one without the other. An event with a `key`
already recorded is not appended again: that is what makes a redelivered task
or a resumed run harmless.

Each type's data has a class (StepStarted, ToolRequested, ...): the executor
writes `EventData.data()`, and `decode` reads a recorded event back into its
class. `fold` rebuilds what a run has done from its events alone; the executor
resumes from it after a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self, cast

import orjson
import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from agents.models import FINAL_STATUSES, Run, RunEvent, RunStatus
from realtime import streams
from tenants.context import current_schema_name

logger = logging.getLogger(__name__)


class EventType(StrEnum):
    RUN_QUEUED = "run.queued"
    RUN_STARTED = "run.started"
    RUN_RESUMED = "run.resumed"
    RUN_CANCEL_REQUESTED = "run.cancel_requested"
    STEP_STARTED = "step.started"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    LLM_USAGE = "llm.usage"
    RETRIEVAL_USAGE = "retrieval.usage"
    TOOL_REQUESTED = "tool.call.requested"
    TOOL_SUCCEEDED = "tool.call.succeeded"
    TOOL_FAILED = "tool.call.failed"
    COMPENSATION_STARTED = "compensation.started"
    COMPENSATION_SUCCEEDED = "compensation.succeeded"
    COMPENSATION_FAILED = "compensation.failed"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    RUN_COMPENSATED = "run.compensated"
    RUN_COMPENSATION_FAILED = "run.compensation_failed"


RUN_QUEUED = EventType.RUN_QUEUED
RUN_STARTED = EventType.RUN_STARTED
RUN_RESUMED = EventType.RUN_RESUMED
RUN_CANCEL_REQUESTED = EventType.RUN_CANCEL_REQUESTED
STEP_STARTED = EventType.STEP_STARTED
STEP_SUCCEEDED = EventType.STEP_SUCCEEDED
STEP_FAILED = EventType.STEP_FAILED
STEP_SKIPPED = EventType.STEP_SKIPPED
LLM_USAGE = EventType.LLM_USAGE
RETRIEVAL_USAGE = EventType.RETRIEVAL_USAGE
TOOL_REQUESTED = EventType.TOOL_REQUESTED
TOOL_SUCCEEDED = EventType.TOOL_SUCCEEDED
TOOL_FAILED = EventType.TOOL_FAILED
COMPENSATION_STARTED = EventType.COMPENSATION_STARTED
COMPENSATION_SUCCEEDED = EventType.COMPENSATION_SUCCEEDED
COMPENSATION_FAILED = EventType.COMPENSATION_FAILED
FINAL_EVENTS = {
    EventType.RUN_SUCCEEDED: RunStatus.SUCCEEDED,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED,
    EventType.RUN_COMPENSATED: RunStatus.COMPENSATED,
    EventType.RUN_COMPENSATION_FAILED: RunStatus.COMPENSATION_FAILED,
}


class EventTooLargeError(ValueError):
    """An event's data is over settings.AGENT_EVENT_MAX_BYTES of JSON."""


def check_event_size(data: dict[str, Any], what: str = "the event") -> None:
    size, limit = len(orjson.dumps(data, default=str)), settings.AGENT_EVENT_MAX_BYTES
    if size > limit:
        raise EventTooLargeError(f"{what} is {size} bytes of JSON, over the limit of {limit} for a run event")


def stream_payload(run: Run, event: RunEvent) -> dict[str, Any]:
    """What the live stream carries of an event. A run's stream holds its first
    AGENT_RUN_STREAM_MAX_EVENTS events with their data (each at most
    AGENT_RUN_STREAM_EVENT_MAX_BYTES of it); any other event is streamed without
    its data (`"truncated": true`: read it from `GET /api/v1/runs/{id}/events`),
    so the stream has no gaps and a run's retained stream stays small."""
    payload: dict[str, Any] = {
        "type": event.type,
        "run_id": run.pk,
        "seq": event.seq,
        "step_id": event.step_id,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }
    over_count = event.seq > settings.AGENT_RUN_STREAM_MAX_EVENTS and event.type not in FINAL_EVENTS
    if over_count or len(orjson.dumps(event.data, default=str)) > settings.AGENT_RUN_STREAM_EVENT_MAX_BYTES:
        payload["data"], payload["truncated"] = None, True
    return payload


def publish_event(schema_name: str, run: Run, event: RunEvent) -> None:
    """Send a committed event to the run's live stream (`/ws/v1/streams/<stream_id>`).

    Best effort: the events table is the record, and `GET /api/v1/runs/{id}/events`
    serves anything a subscriber missed; a Redis outage must not fail the run.
    """
    if not run.stream_id:
        return
    payload = stream_payload(run, event)
    try:
        streams.publish(schema_name, run.stream_id, payload, final=event.type in FINAL_EVENTS)
    except streams.StreamClosedError:
        pass
    except (redis.RedisError, OSError, ValueError):
        logger.warning("run %s event %s was not streamed", run.pk, event.seq, exc_info=True)


def append(
    run: Run, type: str, *, step_id: str = "", key: str = "", data: dict[str, Any] | None = None
) -> RunEvent | None:
    """Record one event (None if `key` was already recorded) and update the run's projection.
    EventTooLargeError for data over settings.AGENT_EVENT_MAX_BYTES of JSON."""
    data = data or {}
    check_event_size(data)
    try:
        with transaction.atomic():
            locked = Run.objects.select_for_update().get(pk=run.pk)
            if locked.status in FINAL_STATUSES:
                return None  # a finished run's log is closed
            seq = (locked.events.aggregate(last=Max("seq"))["last"] or 0) + 1
            event = RunEvent.objects.create(
                run=locked, seq=seq, type=str(type), step_id=step_id, key=key or f"{type}#{seq}", data=data
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


# What events say: one class per type, written by `data()` and read by `decode`.


class EventData:
    """An event's type and data, typed. A field with a default may be missing from
    events recorded before it was added."""

    TYPE: ClassVar[EventType]

    @property
    def type(self) -> EventType:
        return self.TYPE

    def data(self) -> dict[str, Any]:
        values = {item.name: getattr(self, item.name) for item in fields(cast(Any, self))}
        return {name: str(value) if isinstance(value, Decimal) else value for name, value in values.items()}

    @classmethod
    def from_data(cls, event_type: str, data: dict[str, Any]) -> Self:
        return cls(**{item.name: data[item.name] for item in fields(cast(Any, cls)) if item.name in data})


@dataclass(frozen=True, kw_only=True)
class RunStarted(EventData):
    TYPE = EventType.RUN_STARTED


@dataclass(frozen=True, kw_only=True)
class RunResumed(EventData):
    TYPE = EventType.RUN_RESUMED


@dataclass(frozen=True, kw_only=True)
class RunCancelRequested(EventData):
    TYPE = EventType.RUN_CANCEL_REQUESTED


@dataclass(frozen=True, kw_only=True)
class StepStarted(EventData):
    TYPE = EventType.STEP_STARTED
    kind: str = ""
    attempt: int = 1


@dataclass(frozen=True, kw_only=True)
class StepSucceeded(EventData):
    TYPE = EventType.STEP_SUCCEEDED
    output: Any = None
    attempt: int = 1


@dataclass(frozen=True, kw_only=True)
class StepFailed(EventData):
    TYPE = EventType.STEP_FAILED
    error: str = ""
    attempt: int = 1


@dataclass(frozen=True, kw_only=True)
class StepSkipped(EventData):
    """An optional step not run: `reason` says why (the degrade level)."""

    TYPE = EventType.STEP_SKIPPED
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ModelUsage(EventData):
    """What one gateway call of the run cost, under its ledger row's request id."""

    request_id: str
    model: str
    prompt_tokens: int
    cost_usd: Decimal

    @classmethod
    def from_data(cls, event_type: str, data: dict[str, Any]) -> Self:
        return super().from_data(event_type, {**data, "cost_usd": Decimal(data["cost_usd"])})


@dataclass(frozen=True, kw_only=True)
class LlmUsage(ModelUsage):
    TYPE = EventType.LLM_USAGE
    tier: int
    completion_tokens: int


@dataclass(frozen=True, kw_only=True)
class RetrievalUsage(ModelUsage):
    """The embedding of a retrieve step's query (keyword searches embed nothing)."""

    TYPE = EventType.RETRIEVAL_USAGE


@dataclass(frozen=True, kw_only=True)
class ToolRequested(EventData):
    TYPE = EventType.TOOL_REQUESTED
    tool: str
    version: str = ""
    side_effect: str = ""
    input: Any
    idempotency_key: str


@dataclass(frozen=True, kw_only=True)
class ToolSucceeded(EventData):
    TYPE = EventType.TOOL_SUCCEEDED
    output: Any = None


@dataclass(frozen=True, kw_only=True)
class ToolFailed(EventData):
    """`applied`: whether the failed call may have had its effect, "unknown" or "no"."""

    TYPE = EventType.TOOL_FAILED
    error: str = ""
    applied: str = "unknown"


@dataclass(frozen=True, kw_only=True)
class CompensationStarted(EventData):
    TYPE = EventType.COMPENSATION_STARTED


@dataclass(frozen=True, kw_only=True)
class CompensationSucceeded(EventData):
    TYPE = EventType.COMPENSATION_SUCCEEDED
    output: Any = None


@dataclass(frozen=True, kw_only=True)
class CompensationFailed(EventData):
    TYPE = EventType.COMPENSATION_FAILED
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class RunFinished(EventData):
    """The final event: succeeded with `output`, or ended (`outcome`) with `error`."""

    outcome: EventType
    output: Any = None
    error: str = ""

    @property
    def type(self) -> EventType:
        return self.outcome

    def data(self) -> dict[str, Any]:
        if self.outcome == EventType.RUN_SUCCEEDED:
            return {"output": self.output}
        return {"error": self.error}

    @classmethod
    def from_data(cls, event_type: str, data: dict[str, Any]) -> Self:
        return cls(outcome=EventType(event_type), output=data.get("output"), error=data.get("error", ""))


SIMPLE_EVENT_CLASSES: tuple[type[EventData], ...] = (
    RunStarted,
    RunResumed,
    RunCancelRequested,
    StepStarted,
    StepSucceeded,
    StepFailed,
    StepSkipped,
    LlmUsage,
    RetrievalUsage,
    ToolRequested,
    ToolSucceeded,
    ToolFailed,
    CompensationStarted,
    CompensationSucceeded,
    CompensationFailed,
)
EVENT_CLASSES: dict[str, type[EventData]] = {
    **{str(cls.TYPE): cls for cls in SIMPLE_EVENT_CLASSES},
    **{str(final): RunFinished for final in FINAL_EVENTS},
}


def decode(event: RunEvent) -> EventData | None:
    """The typed form of a recorded event (None for a type the executor does not read)."""
    cls = EVENT_CLASSES.get(event.type)
    return cls.from_data(event.type, event.data) if cls is not None else None


def project(run: Run, event: RunEvent) -> list[str]:
    """Apply `event` to the run row; the names of the fields it changed."""
    match decode(event):
        case RunStarted() | RunResumed():
            run.status = RunStatus.RUNNING
            run.heartbeat_at = event.created_at
            if run.started_at is None:
                run.started_at = event.created_at
                return ["status", "heartbeat_at", "started_at"]
            return ["status", "heartbeat_at"]
        case StepStarted():
            run.steps_executed += 1
            return ["steps_executed"]
        case LlmUsage() as usage:
            run.cost_usd += usage.cost_usd
            run.prompt_tokens += usage.prompt_tokens
            run.completion_tokens += usage.completion_tokens
            return ["cost_usd", "prompt_tokens", "completion_tokens"]
        case RetrievalUsage() as usage:
            run.cost_usd += usage.cost_usd
            run.prompt_tokens += usage.prompt_tokens
            return ["cost_usd", "prompt_tokens"]
        case RunFinished() as finished:
            return finish(run, finished)
    return []


def finish(run: Run, finished: RunFinished) -> list[str]:
    run.status = FINAL_EVENTS[finished.outcome]
    run.finished_at = timezone.now()
    run.output = finished.output
    run.error = finished.error
    return ["status", "finished_at", "output", "error"]


Outcome = Literal["succeeded", "failed"]


@dataclass
class StepRecord:
    status: Literal["started", "succeeded", "failed", "skipped"] = "started"
    output: Any = None
    error: str = ""
    attempt: int = 0


@dataclass
class ToolCall:
    step_id: str
    tool: str
    input: Any
    idempotency_key: str
    outcome: Outcome | None = None  # None: not recorded
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
    compensations: dict[str, Outcome] = field(default_factory=dict)  # by step id
    cost_usd: Decimal = Decimal(0)
    steps_executed: int = 0

    def apply(self, event: RunEvent) -> None:
        step_id = event.step_id
        match decode(event):
            case RunStarted() | RunResumed():
                self.started = True
            case RunCancelRequested():
                self.cancel_requested = True
            case StepStarted(attempt=attempt):
                self.steps_executed += 1
                self.steps[step_id] = StepRecord(attempt=attempt)
            case StepSucceeded(output=output, attempt=attempt):
                self.steps[step_id] = StepRecord("succeeded", output, attempt=attempt)
            case StepFailed(error=error, attempt=attempt):
                self.steps[step_id] = StepRecord("failed", error=error, attempt=attempt)
            case StepSkipped():
                self.steps[step_id] = StepRecord("skipped")
            case LlmUsage(cost_usd=cost) | RetrievalUsage(cost_usd=cost):
                self.cost_usd += cost
            case ToolRequested() as requested:
                self.tool_calls[step_id] = ToolCall(
                    step_id, requested.tool, requested.input, requested.idempotency_key
                )
            case ToolSucceeded() | ToolFailed() as outcome:
                self.apply_tool_outcome(step_id, outcome)
            case CompensationSucceeded():
                self.compensations[step_id] = "succeeded"
            case CompensationFailed():
                self.compensations[step_id] = "failed"
            case RunFinished():
                self.finished = True

    def apply_tool_outcome(self, step_id: str, outcome: ToolSucceeded | ToolFailed) -> None:
        call = self.tool_calls[step_id]
        if isinstance(outcome, ToolSucceeded):
            call.outcome, call.output, call.applied, call.error = "succeeded", outcome.output, "unknown", ""
        else:
            call.outcome, call.output, call.applied, call.error = (
                "failed",
                None,
                outcome.applied,
                outcome.error,
            )


def fold(events: list[RunEvent]) -> RunState:
    state = RunState()
    for event in events:
        state.apply(event)
    return state


def state_of(run: Run) -> RunState:
    return fold(list(run.events.order_by("seq")))
