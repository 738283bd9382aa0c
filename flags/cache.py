"""The flag table, held in each process: evaluations read it from memory.

The first evaluation loads it (and subscribes to the control bus); an announcement
on TOPIC, or a reconnection of the bus, makes the next evaluation load it again.
A generation counter keeps a load that raced an announcement from being kept.
"""

from __future__ import annotations

import os
import threading

from aiaas import control_bus
from flags.rules import FlagTable

TOPIC = "flags"

_lock = threading.Lock()
_generation = 0
_table: tuple[int, FlagTable] | None = None
_subscribed_pid: int | None = None


def current_table() -> FlagTable:
    """The flags as of the last announcement: memory, or one load after a change."""
    global _table
    _subscribe()
    generation = _generation
    cached = _table
    if cached is not None and cached[0] == generation:
        return cached[1]
    from flags.selectors import flag_table  # the models load after this package

    table = flag_table()
    with _lock:
        if generation == _generation:
            _table = (generation, table)
    return table


def forget(payload: str = "") -> None:
    """Drop this process's copy; the next evaluation loads the flags again."""
    global _generation
    with _lock:
        _generation += 1


def _subscribe() -> None:
    """Listen before the first load: a change committed in between is announced
    after it, or covered by the call to every handler once the bus is subscribed.
    A forked child inherits the handler but not the listener thread: it starts one."""
    global _subscribed_pid
    with _lock:
        inherited = _subscribed_pid is not None
        if _subscribed_pid == os.getpid():
            return
        _subscribed_pid = os.getpid()
    if inherited:
        control_bus.wait_until_listening(timeout=0)
    else:
        control_bus.on(TOPIC, forget)
