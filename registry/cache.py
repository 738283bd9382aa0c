"""Each process's copy of the platform's runnable entries, by kind.

Loaded (and every signature verified) on first use, dropped whenever the
control bus announces a registry change, so a promotion or rollback reaches
every process within a second. The copy is swapped whole, never mutated, so
the listener thread and readers need no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiaas import control_bus

T = TypeVar("T")
TOPIC = "registry"

_copies: dict[str, object] = {}
_listening = False


def get(kind: str, load: Callable[[], T]) -> T:
    """The cached value for `kind`, loaded with `load` when missing."""
    listen()
    if kind not in _copies:
        _copies[kind] = load()  # a racing reader may load it too: both copies are current
    value: T = _copies[kind]  # type: ignore[assignment]
    return value


def clear(payload: str = "") -> None:
    global _copies
    _copies = {}


def listen() -> None:
    global _listening
    if not _listening:
        _listening = True
        control_bus.on(TOPIC, clear)
