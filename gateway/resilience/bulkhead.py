"""A cap on concurrent calls to one provider within a process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class BulkheadFullError(Exception):
    """No slot freed within the bulkhead's max_wait_seconds."""

    def __init__(self, max_concurrent: int, max_wait_seconds: float) -> None:
        super().__init__(f"all {max_concurrent} slots busy for {max_wait_seconds:.3f}s")
        self.max_concurrent = max_concurrent
        self.max_wait_seconds = max_wait_seconds


class Bulkhead:
    """At most `max_concurrent` bodies of `slot()` run at once in this process
    (one event loop); a caller waits up to `max_wait_seconds` for a slot, then
    gets BulkheadFullError. A slot is released however its body ends,
    cancellation included, and a caller cancelled while waiting holds none."""

    def __init__(self, max_concurrent: int, max_wait_seconds: float) -> None:
        self.max_concurrent = max_concurrent
        self.max_wait_seconds = max_wait_seconds
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.max_wait_seconds):
                await self._semaphore.acquire()
        except TimeoutError:
            raise BulkheadFullError(self.max_concurrent, self.max_wait_seconds) from None
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1
            self._semaphore.release()
