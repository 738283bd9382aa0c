"""django-tenants' PostgreSQL backend with a bounded number of connections per
process, and connections that recover by themselves after PostgreSQL restarts.

- At most DATABASE_CONNECTIONS_PER_PROCESS connections are open at once in
  this process (without the psycopg pool; with it, the pool's max_size is the
  bound). A thread that would open one more waits up to
  DATABASE_CONNECTION_WAIT_SECONDS, then gets an OperationalError. A slot is
  freed when its connection is closed, or collected with a dead thread.
- A connection that saw an error (other than a data or integrity error) is
  checked before its next use and replaced when it is dead. Django does this
  at request boundaries only; threads that keep a connection between jobs
  (the gateway's, asgiref's shared thread) would otherwise keep a dead one.

docs/decisions/0012-database-connections.md says why.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper

_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def connection_slots() -> threading.BoundedSemaphore:
    """This process's semaphore for the configured limit (a changed limit gets a new one)."""
    limit = settings.DATABASE_CONNECTIONS_PER_PROCESS
    with _slots_lock:
        return _slots.setdefault(limit, threading.BoundedSemaphore(limit))


class DatabaseWrapper(TenantDatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.slot: weakref.finalize[Any, Any] | None = None

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if self.pool:
            return super().get_new_connection(conn_params)
        slots = connection_slots()
        if not slots.acquire(timeout=settings.DATABASE_CONNECTION_WAIT_SECONDS):
            limit = settings.DATABASE_CONNECTIONS_PER_PROCESS
            raise OperationalError(f"All {limit} database connections of this process are in use.")
        try:
            connection = super().get_new_connection(conn_params)
        except BaseException:
            slots.release()
            raise
        # Released once: when the connection is closed, or collected with a thread that never closed it.
        self.slot = weakref.finalize(connection, slots.release)
        return connection

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            if self.slot is not None:
                self.slot()
                self.slot = None

    def close_if_health_check_failed(self) -> None:
        errors_occurred: bool = self.errors_occurred  # type: ignore[has-type]
        suspect = self.connection is not None and (errors_occurred or self.connection.closed)
        if suspect and not self.in_atomic_block:
            if self.is_usable():
                self.errors_occurred = False
            else:
                self.close()  # type: ignore[no-untyped-call]
        super().close_if_health_check_failed()
