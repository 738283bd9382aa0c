"""The event loop and async clients agent runs use, one set per thread.

Runs are executed by synchronous Celery tasks; their LLM and tool calls are
async (the gateway's orchestrator, the Redis-backed breaker). Each worker
thread keeps one loop open across tasks, so connection pools are reused, and
its clients are never shared with another loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from functools import cached_property
from typing import Any, TypeVar

from gateway.resilience import CircuitBreaker
from gateway.transports.inprocess import InProcessGateway

T = TypeVar("T")


class Runtime:
    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.gateway = InProcessGateway()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    @cached_property
    def breaker(self) -> CircuitBreaker:
        return CircuitBreaker(self.gateway.clients.redis)


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
