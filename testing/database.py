"""Writes that other processes and server threads must see during a test."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def committed(write: Callable[[], T]) -> T:
    """Run `write` on a connection of its own, in autocommit, and return its result.

    A test's own connection is inside a transaction that is rolled back, so a
    server thread never sees its writes; this one commits at once (and runs
    on-commit hooks at once). What it writes outlives the test: use unique names.
    """

    def run() -> T:
        try:
            return write()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(run).result()
