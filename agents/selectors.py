"""Reads of agents and runs (in the tenant's schema)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from agents.events import EventType
from agents.models import Agent, Run, RunEvent, RunStatus


def agents_list() -> QuerySet[Agent]:
    return Agent.objects.all()


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
