"""Reads of agents and runs (in the tenant's schema)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.db.models import QuerySet

from agents.events import EventType
from agents.models import Agent, Prompt, Run, RunEvent, RunStatus


def agents_list() -> QuerySet[Agent]:
    return Agent.objects.all()


def prompts_list() -> QuerySet[Prompt]:
    return Prompt.objects.all()


def runs_list(agent: Agent | None = None) -> QuerySet[Run]:
    runs = Run.objects.all()
    return runs.filter(agent=agent) if agent is not None else runs


def events_of(run: Run, after: int = 0) -> QuerySet[RunEvent]:
    return run.events.filter(seq__gt=after).order_by("seq")


def compensation_alerts() -> QuerySet[Run]:
    """Runs whose undo failed: the dashboard shows them until someone acts."""
    return Run.objects.filter(status=RunStatus.COMPENSATION_FAILED)


def step_outputs(run: Run) -> dict[str, Any]:
    """Each step's last recorded output, by step id (for the replay diff)."""
    outputs: dict[str, Any] = {}
    for event in run.events.filter(type=EventType.STEP_SUCCEEDED).order_by("seq"):
        outputs[event.step_id] = event.data.get("output")
    return outputs


def replay_diff(original: Run, replay: Run) -> list[dict[str, Any]]:
    """Per step (and the run's output): what the original and the replay produced."""
    before, after = step_outputs(original), step_outputs(replay)
    rows = [
        {
            "step_id": step_id,
            "original": before.get(step_id),
            "replay": after.get(step_id),
            "same": before.get(step_id) == after.get(step_id),
        }
        for step_id in dict.fromkeys([*before, *after])
    ]
    rows.append(
        {
            "step_id": "(output)",
            "original": original.output,
            "replay": replay.output,
            "same": original.output == replay.output,
        }
    )
    return rows


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class StepView:
    """One step of a run as its events tell it (the run page's step view)."""

    step_id: str
    kind: str
    started_at: datetime
    status: StepStatus = StepStatus.RUNNING
    finished_at: datetime | None = None
    attempts: int = 1
    error: str = ""
    cost_usd: Decimal = field(default_factory=Decimal)
    tokens: int = 0

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000)


USAGE_EVENTS = {EventType.LLM_USAGE, EventType.RETRIEVAL_USAGE}


def run_steps(run: Run) -> list[StepView]:
    """The run's steps in the order they started, each with its last attempt's
    status and time, and the model usage its events recorded."""
    steps: dict[str, StepView] = {}
    for event in events_of(run).exclude(step_id=""):
        step = steps.get(event.step_id)
        if event.type == EventType.STEP_STARTED:
            if step is None:
                kind = str(event.data.get("kind", ""))
                steps[event.step_id] = StepView(event.step_id, kind, event.created_at)
            else:
                step.attempts, step.status, step.finished_at = step.attempts + 1, StepStatus.RUNNING, None
        elif step is not None:
            record_on_step(step, event)
    return list(steps.values())


def record_on_step(step: StepView, event: RunEvent) -> None:
    if event.type == EventType.STEP_SUCCEEDED:
        step.status, step.finished_at = StepStatus.SUCCEEDED, event.created_at
    elif event.type == EventType.STEP_FAILED:
        step.status, step.finished_at = StepStatus.FAILED, event.created_at
        step.error = str(event.data.get("error", ""))
    elif event.type in USAGE_EVENTS:
        step.cost_usd += Decimal(str(event.data.get("cost_usd", "0")))
        step.tokens += int(event.data.get("prompt_tokens", 0)) + int(event.data.get("completion_tokens", 0))
