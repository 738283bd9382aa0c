"""The degrade level as this process knows it: a copy in process memory, read on
the gateway's hot path without I/O.

The copy is loaded from PostgreSQL on first use (on a thread of its own, so an
event loop never waits on it; until then the level reads `normal`, except to
is_paused, which waits for it) and replaced whenever the control bus announces
the topic "degrade", within a second in every process (capacity.services
announces every change after its commit). An announcement carries the new level
and source; an empty one (the bus reconnected, and may have missed some)
reloads from PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from django.db import connection

from aiaas import control_bus
from aiaas.observability import metrics
from capacity.levels import Effects, Level, PausedWork, Source, effects_for

logger = logging.getLogger(__name__)

TOPIC = "degrade"
FIRST_LOAD_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    level: Level = Level.NORMAL
    source: Source = Source.AUTO
    effects: Effects = field(default_factory=Effects)

    @classmethod
    def of(cls, level: Level, source: Source) -> Snapshot:
        return cls(level, source, effects_for(level))

    def payload(self) -> str:
        return f"{self.level.value} {self.source.value}"


_snapshot = Snapshot()
_loaded = threading.Event()
_lock = threading.Lock()
_watched_by: int | None = None  # the pid that registered with the bus


def current() -> Snapshot:
    """This process's copy of the level (no I/O once watching)."""
    if _watched_by != os.getpid():
        _watch()
    return _snapshot


def wait_until_loaded(timeout: float = 5.0) -> bool:
    """Whether this process has read the level (for tests and startup checks)."""
    current()
    return _loaded.wait(timeout)


def is_paused(kind: PausedWork) -> bool:
    """Whether new work of `kind` waits (queued, not started) at this process's level.
    Off the hot path, a fresh process waits up to FIRST_LOAD_WAIT_SECONDS for its first
    read rather than send work as if the level were `normal`."""
    current()
    _loaded.wait(FIRST_LOAD_WAIT_SECONDS)
    return kind in _snapshot.effects.pause_work


def apply(snapshot: Snapshot) -> None:
    global _snapshot
    _snapshot = snapshot
    metrics.DEGRADE_LEVEL.set(snapshot.level.rank)
    _loaded.set()


def reload() -> None:
    """Read the level from PostgreSQL (a missing row is `normal` under automatic control)."""
    from capacity.models import DegradeState

    try:
        state = DegradeState.objects.filter(pk=DegradeState.SINGLETON_ID).first()
    finally:
        connection.close()  # this thread's own connection; the thread ends or waits long
    apply(Snapshot() if state is None else Snapshot.of(Level(state.level), Source(state.source)))


def _watch() -> None:
    global _watched_by
    pid = os.getpid()
    with _lock:
        if _watched_by == pid:
            return
        if _watched_by is None:
            control_bus.on(TOPIC, _on_announcement)
        else:  # a forked child inherited the handler, not the listener thread
            control_bus.wait_until_listening(timeout=0)
        _watched_by = pid
        _loaded.clear()
    threading.Thread(target=_reload_logged, name="degrade-load", daemon=True).start()


def _on_announcement(payload: str) -> None:
    level, _, source = payload.partition(" ")
    try:
        snapshot = Snapshot.of(Level(level), Source(source))
    except ValueError:  # empty (a reconnection) or unreadable: ask PostgreSQL
        reload()
        return
    apply(snapshot)


def _reload_logged() -> None:
    try:
        reload()
    except Exception:  # the database is not there yet (a first migrate): the bus retries on reconnect
        logger.exception("the degrade level was not loaded; reading it as normal")
