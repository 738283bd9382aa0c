"""The degrade levels and what each one changes (settings.DEGRADE_EFFECTS)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings


class Level(StrEnum):
    NORMAL = "normal"
    DEGRADED = "degraded"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return LEVELS.index(self)


LEVELS: tuple[Level, ...] = (Level.NORMAL, Level.DEGRADED, Level.CRITICAL)
RAISED_LEVELS: tuple[Level, ...] = LEVELS[1:]


class Source(StrEnum):
    AUTO = "auto"  # the evaluator follows the signals (capacity/evaluator.py)
    STAFF = "staff"  # held by staff until they return it to automatic control


class PausedWork(StrEnum):
    INGESTION = "ingestion"
    EVALS = "evals"


@dataclass(frozen=True, slots=True)
class Effects:
    """What one level changes; None or empty: nothing.

    - quality_target: `auto` routes with at most this target (cheaper tiers).
    - max_tokens: a chat's output limit is capped here.
    - context_tokens: the oldest turns are dropped past this estimate (system kept).
    - skip_optional_steps: agent steps marked `optional` are skipped.
    - shed_priorities: keys of these priorities get 503 with Retry-After.
    - pause_work: new work of these kinds stays queued until the level allows it.
    """

    quality_target: float | None = None
    max_tokens: int | None = None
    context_tokens: int | None = None
    skip_optional_steps: bool = False
    shed_priorities: frozenset[str] = frozenset()
    pause_work: frozenset[PausedWork] = frozenset()

    @classmethod
    def of(cls, config: dict[str, Any]) -> Effects:
        return cls(
            quality_target=config.get("quality_target"),
            max_tokens=config.get("max_tokens"),
            context_tokens=config.get("context_tokens"),
            skip_optional_steps=bool(config.get("skip_optional_steps", False)),
            shed_priorities=frozenset(config.get("shed_priorities", ())),
            pause_work=frozenset(PausedWork(kind) for kind in config.get("pause_work", ())),
        )


def effects_for(level: Level) -> Effects:
    return Effects.of(settings.DEGRADE_EFFECTS.get(level.value, {}))
