"""The event loop's default executor, giving back database connections after each job.

`sync_to_async(..., thread_sensitive=False)` (the gateway's key lookups, the
WebSocket handshake) runs on the loop's default executor, whose threads live
as long as the process and never see Django's request_started/finished
signals: each would keep its connection for ever, and a dead one after a
PostgreSQL restart. Here every job ends as a Django request does, with
`close_old_connections()` (with CONN_MAX_AGE=0: closed, or back to the pool).
Installed by the ASGI lifespan (aiaas/asgi.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import close_old_connections

P = ParamSpec("P")
T = TypeVar("T")


class ConnectionReturningExecutor(ThreadPoolExecutor):
    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(returning_connections(fn), *args, **kwargs)


def returning_connections(fn: Callable[P, T]) -> Callable[P, T]:
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return run


def install_connection_returning_executor() -> None:
    asyncio.get_running_loop().set_default_executor(
        ConnectionReturningExecutor(thread_name_prefix="asyncio-db")
    )
