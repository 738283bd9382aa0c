"""Automatic control: the level the signals call for, with hysteresis.

Each signal has, per level above normal, an entry threshold and a lower exit
threshold (settings.DEGRADE_THRESHOLDS). The level rises at once to the highest
level any signal has entered. It falls only after DEGRADE_MIN_DWELL_SECONDS at
the current level, and only to the highest level some signal still holds (is at
or above its exit threshold), so a signal hovering around one threshold does
not make the level flap. Nothing changes while staff hold the level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from aiaas.observability import metrics
from capacity import services, signals
from capacity.levels import LEVELS, RAISED_LEVELS, Level, Source
from capacity.models import DegradeChange, DegradeState


@dataclass(frozen=True, slots=True)
class Threshold:
    enter: float
    exit: float


Thresholds = Mapping[str, Mapping[Level, Threshold]]


def configured_thresholds() -> Thresholds:
    """settings.DEGRADE_THRESHOLDS typed: {signal: {level: (enter, exit)}}."""
    return {
        signal: {Level(level): Threshold(*pair) for level, pair in by_level.items()}
        for signal, by_level in settings.DEGRADE_THRESHOLDS.items()
    }


@dataclass(frozen=True, slots=True)
class Decision:
    level: Level
    reason: str


def decide(
    current: Level,
    since: datetime,
    measured: signals.Signals,
    thresholds: Thresholds,
    now: datetime,
    min_dwell: timedelta,
) -> Decision:
    """The level to be at now, from `current` (entered at `since`)."""
    entered = [level for level in RAISED_LEVELS if crossing(measured, thresholds, level, "enter")]
    if entered and entered[-1].rank > current.rank:
        return Decision(entered[-1], describe(measured, thresholds, entered[-1], "enter"))
    if current is Level.NORMAL or now - since < min_dwell:
        return Decision(current, "")
    held = [level for level in LEVELS[1 : current.rank + 1] if crossing(measured, thresholds, level, "exit")]
    target = held[-1] if held else Level.NORMAL
    if target is current:
        return Decision(current, "")
    if target is Level.NORMAL:
        return Decision(target, "every signal below its exit threshold")
    return Decision(target, describe(measured, thresholds, target, "exit"))


def crossing(measured: signals.Signals, thresholds: Thresholds, level: Level, which: str) -> list[str]:
    """The signals at or above their `which` ("enter" or "exit") threshold of `level`."""
    return [
        name
        for name, value in measured.items()
        if value is not None
        and level in thresholds.get(name, {})
        and value >= getattr(thresholds[name][level], which)
    ]


def describe(measured: signals.Signals, thresholds: Thresholds, level: Level, which: str) -> str:
    return ", ".join(
        f"{name} {measured[name]:g} >= {getattr(thresholds[name][level], which):g} ({which} {level})"
        for name in crossing(measured, thresholds, level, which)
    )


def evaluate(
    measure: Callable[[], signals.Signals] = signals.measure, now: datetime | None = None
) -> DegradeChange | None:
    """Measure, decide and apply; the change made, if any. `measure` is the signal
    source (tests give a synthetic one)."""
    measured = measure()
    for name, value in measured.items():
        if value is not None:
            metrics.series(metrics.DEGRADE_SIGNAL, name).set(value)
    state = DegradeState.objects.filter(pk=DegradeState.SINGLETON_ID).first()
    if state is not None and state.source != Source.AUTO:
        return None
    now = now or timezone.now()
    current, since = (Level(state.level), state.since) if state else (Level.NORMAL, now)
    dwell = timedelta(seconds=settings.DEGRADE_MIN_DWELL_SECONDS)
    decision = decide(current, since, measured, configured_thresholds(), now, dwell)
    if decision.level is current:
        return None
    return services.set_automatically(decision.level, reason=decision.reason, signals=measured, at=now)
