"""The event loop and in-process gateway that synchronous ingestion code uses, one
per thread.

Celery tasks (embedding chunks) and DRF views (embedding a search query) are
synchronous; the gateway's embeddings service is async. Each thread keeps one
loop open across calls, so the gateway's connection pools are reused, and its
clients are never shared with another loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from gateway.transports.inprocess import InProcessGateway

T = TypeVar("T")


class Runtime:
    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.gateway = InProcessGateway()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)


_local = threading.local()


def runtime() -> Runtime:
    current: Runtime | None = getattr(_local, "runtime", None)
    if current is None:
        current = _local.runtime = Runtime()
    return current


def close_runtime() -> None:
    """Close this thread's clients and loop (a worker thread that ends, tests)."""
    current: Runtime | None = getattr(_local, "runtime", None)
    if current is not None:
        current.run(current.gateway.aclose())
        current.runner.close()
        _local.runtime = None
