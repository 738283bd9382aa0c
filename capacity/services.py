"""Changing the degrade level. Each change is one transaction (the state row
locked, an audit row written), counted in aiaas_degrade_changes_total, and
announced after its commit so every process applies it within a second.
Leaving a level that paused work queues the paused work again."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from aiaas import control_bus
from aiaas.observability import metrics
from capacity import state
from capacity.levels import Level, Source, effects_for
from capacity.models import DegradeChange, DegradeState

logger = logging.getLogger(__name__)
AUTO_SET_BY = "auto"


def set_by_staff(level: Level, *, reason: str = "", set_by: str = "") -> DegradeChange | None:
    """Staff hold the platform at `level` until they change it; `normal` hands the
    level back to automatic control (which starts from normal)."""
    source = Source.AUTO if level is Level.NORMAL else Source.STAFF
    return change_level(level, source, reason=reason, set_by=set_by)


def set_automatically(
    level: Level, *, reason: str, signals: dict[str, Any], at: datetime | None = None
) -> DegradeChange | None:
    """The evaluator's change (decided at `at`); nothing while staff hold the level."""
    return change_level(
        level, Source.AUTO, reason=reason, set_by=AUTO_SET_BY, signals=signals, only_if_auto=True, at=at
    )


def change_level(
    level: Level,
    source: Source,
    *,
    reason: str = "",
    set_by: str = "",
    signals: dict[str, Any] | None = None,
    only_if_auto: bool = False,
    at: datetime | None = None,
) -> DegradeChange | None:
    """The audit row of the change; None when the level and its source are already so."""
    with transaction.atomic():
        current = locked_state()
        previous = Level(current.level)
        if (previous, Source(current.source)) == (level, source):
            return None
        if only_if_auto and current.source != Source.AUTO:
            return None
        change = DegradeChange.objects.create(
            previous_level=previous,
            level=level,
            source=source,
            reason=reason[:500],
            set_by=set_by,
            signals=signals or {},
            created_at=at or timezone.now(),
        )
        if previous is not level:
            current.since = change.created_at
        current.level, current.source, current.reason, current.set_by = level, source, reason[:500], set_by
        current.save()
        snapshot = state.Snapshot.of(level, source)
        transaction.on_commit(lambda: publish(snapshot, previous))
    metrics.series(metrics.DEGRADE_CHANGES, level.value, source.value).inc()
    logger.warning("degrade level %s -> %s (%s, %s): %s", previous, level, source, set_by, reason)
    return change


def locked_state() -> DegradeState:
    DegradeState.objects.get_or_create(pk=DegradeState.SINGLETON_ID, defaults={"since": timezone.now()})
    return DegradeState.objects.select_for_update().get(pk=DegradeState.SINGLETON_ID)


def publish(snapshot: state.Snapshot, previous: Level) -> None:
    state.apply(snapshot)  # this process at once; the others through the bus
    control_bus.announce(state.TOPIC, snapshot.payload())
    resumed = effects_for(previous).pause_work - snapshot.effects.pause_work
    if resumed:
        from capacity.tasks import resume_paused_work

        resume_paused_work.apply_async(args=[sorted(resumed)])
