"""Test helpers for capacity: the platform held at a degrade level for a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import override_settings

from capacity import services, state
from capacity.levels import Level, Source
from testing.database import committed


@contextmanager
def held_at(level: Level, reason: str = "test", **effects: Any) -> Iterator[None]:
    """The platform held at `level` by staff (committed and announced; this process,
    which serves the test platform, applies it at once), with `effects` as the
    level's settings when given; back to normal under automatic control after."""
    overrides = {**settings.DEGRADE_EFFECTS, level.value: effects} if effects else settings.DEGRADE_EFFECTS
    with override_settings(DEGRADE_EFFECTS=overrides):
        committed(lambda: services.set_by_staff(level, reason=reason, set_by="test"))
        state.apply(state.Snapshot.of(level, Source.STAFF))  # with `effects`, even if the level was set
        try:
            yield
        finally:
            committed(lambda: services.set_by_staff(Level.NORMAL, reason=f"{reason}: done", set_by="test"))
    state.apply(state.Snapshot.of(Level.NORMAL, Source.AUTO))  # effects of the real settings again
