"""Automatic control driven by a synthetic signal: escalation at once, recovery only
below the exit threshold and after the dwell time, and no flapping on a signal
that hovers around a threshold."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db.models import Max, QuerySet
from django.utils import timezone
from pytest_django import Settings

from capacity import evaluator, services
from capacity.levels import Level, Source
from capacity.models import DegradeChange
from capacity.selectors import degrade_state
from capacity.signals import Signals

THRESHOLDS = {"provider_error_rate": {"degraded": [0.10, 0.05], "critical": [0.30, 0.15]}}


class Clock:
    """A synthetic signal and the time the evaluator believes it is."""

    def __init__(self) -> None:
        self.now = timezone.now()
        self.error_rate: float | None = 0.0
        # Changes committed by other tests (live servers, workers) are visible under READ
        # COMMITTED, some with synthetic times of their own: count only this clock's.
        self.first_change_id = (DegradeChange.objects.aggregate(last=Max("id"))["last"] or 0) + 1

    def changes(self) -> QuerySet[DegradeChange]:
        return DegradeChange.objects.filter(id__gte=self.first_change_id)

    def signals(self) -> Signals:
        return {"provider_error_rate": self.error_rate, "celery_queue_depth": None}

    def step(self, error_rate: float, seconds: float = 5) -> Level:
        self.now += timedelta(seconds=seconds)
        self.error_rate = error_rate
        evaluator.evaluate(self.signals, now=self.now)
        return Level(degrade_state().level)


@pytest.fixture
def clock(db: None, settings: Settings) -> Clock:
    settings.DEGRADE_THRESHOLDS = THRESHOLDS
    settings.DEGRADE_MIN_DWELL_SECONDS = 30
    clock = Clock()
    services.set_by_staff(Level.NORMAL, reason="a fresh start")
    return clock


def levels(clock: Clock, rates: list[float]) -> list[str]:
    return [clock.step(rate).value for rate in rates]


def test_it_escalates_at_once_to_the_highest_level_entered(clock: Clock) -> None:
    assert levels(clock, [0.02, 0.12, 0.5]) == ["normal", "degraded", "critical"]
    change = clock.changes().first()
    assert change is not None
    assert (change.previous_level, change.level, change.source, change.set_by) == (
        "degraded",
        "critical",
        "auto",
        "auto",
    )
    assert change.reason == "provider_error_rate 0.5 >= 0.3 (enter critical)"
    assert change.signals == {"provider_error_rate": 0.5, "celery_queue_depth": None}


def test_a_signal_hovering_around_a_threshold_does_not_flap(clock: Clock) -> None:
    hovering = [0.11, 0.09, 0.11, 0.08, 0.12, 0.06, 0.11, 0.09] * 3

    assert set(levels(clock, hovering)) == {"degraded"}
    assert clock.changes().filter(source=Source.AUTO).count() == 1


def test_it_recovers_only_below_the_exit_threshold_after_the_dwell_time(clock: Clock) -> None:
    assert clock.step(0.4) is Level.CRITICAL
    # Below critical's entry but above its exit: held.
    assert levels(clock, [0.2] * 10) == ["critical"] * 10
    # Below critical's exit, above degraded's: one step down.
    assert clock.step(0.1) is Level.DEGRADED
    # Healthy, but within the dwell time at degraded.
    assert levels(clock, [0.0] * 5) == ["degraded"] * 5
    assert clock.step(0.0, seconds=10) is Level.NORMAL
    assert [c.level for c in clock.changes().order_by("created_at", "id")][-3:] == [
        "critical",
        "degraded",
        "normal",
    ]


def test_staff_hold_the_level_until_they_return_it_to_automatic_control(clock: Clock) -> None:
    services.set_by_staff(Level.CRITICAL, reason="provider incident", set_by="ops@example.com")

    assert levels(clock, [0.0] * 3) == ["critical"] * 3
    services.set_by_staff(Level.NORMAL, reason="over", set_by="ops@example.com")
    state = degrade_state()
    assert (state.level, state.source) == ("normal", "auto")
    assert clock.step(0.2) is Level.DEGRADED


def test_an_unread_signal_changes_nothing(clock: Clock) -> None:
    clock.error_rate = None
    assert evaluator.evaluate(clock.signals, now=clock.now) is None
    assert degrade_state().level == "normal"


def test_decide_reads_every_configured_signal() -> None:
    thresholds = {
        "a": {Level.DEGRADED: evaluator.Threshold(10, 5), Level.CRITICAL: evaluator.Threshold(20, 15)},
        "b": {Level.DEGRADED: evaluator.Threshold(1, 0.5)},
    }
    since = datetime(2026, 1, 1, tzinfo=timezone.get_current_timezone())
    later = since + timedelta(hours=1)

    def decide(current: Level, a: float, b: float) -> Level:
        return evaluator.decide(
            current, since, {"a": a, "b": b}, thresholds, later, timedelta(seconds=1)
        ).level

    assert decide(Level.NORMAL, 0, 2) is Level.DEGRADED
    assert decide(Level.NORMAL, 25, 0) is Level.CRITICAL
    assert decide(Level.CRITICAL, 16, 0) is Level.CRITICAL
    assert decide(Level.CRITICAL, 0, 0.6) is Level.DEGRADED
    assert decide(Level.CRITICAL, 0, 0.4) is Level.NORMAL
