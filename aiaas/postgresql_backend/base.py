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
- With DATABASE_TRANSACTION_POOLING (PgBouncer in transaction mode), the
  tenant's search_path is set with `SET LOCAL` inside every transaction, never
  for the session: a statement outside `atomic` runs in a transaction of its
  own with it, so it cannot meet another client's search_path on a shared
  server connection.

docs/decisions/0012-database-connections.md and docs/scale.md say why.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import psycopg
from django.conf import settings
from django.db import OperationalError
from django.db.backends.postgresql.base import Cursor  # type: ignore[attr-defined]
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import quote_schema_name

_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def connection_slots() -> threading.BoundedSemaphore:
    """This process's semaphore for the configured limit (a changed limit gets a new one)."""
    limit = settings.DATABASE_CONNECTIONS_PER_PROCESS
    with _slots_lock:
        return _slots.setdefault(limit, threading.BoundedSemaphore(limit))


class SearchPathCursor(Cursor):
    """Under transaction pooling, a statement outside a transaction is sent in one of
    its own, after `SET LOCAL search_path` (the wrapper's, kept on the connection)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        connection = self.connection
        search_path = connection_search_paths.get(connection)
        if search_path is None or not connection.autocommit:
            return super().execute(query, params, **kwargs)
        with connection.transaction():
            super().execute(f"SET LOCAL search_path = {search_path}")
            return super().execute(query, params, **kwargs)


connection_search_paths: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = weakref.WeakKeyDictionary()


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
        if settings.DATABASE_TRANSACTION_POOLING:
            connection.cursor_factory = SearchPathCursor
        return connection

    def _handle_search_path(self, cursor: Any = None) -> None:
        if not settings.DATABASE_TRANSACTION_POOLING:
            super()._handle_search_path(cursor)  # type: ignore[no-untyped-call]
            return
        if not self.schema_name:
            super()._handle_search_path(cursor)  # type: ignore[no-untyped-call]  # raises ImproperlyConfigured
        schemas = self._get_cursor_search_paths()  # type: ignore[no-untyped-call]
        search_path = ",".join(quote_schema_name(schema) for schema in schemas)
        connection_search_paths[self.connection] = search_path
        if self.connection.autocommit or self._setting_search_path:
            return
        if self.search_path_set_schemas == search_path:  # in this transaction
            return
        self._setting_search_path = True
        try:
            with self.connection.cursor() as local:
                local.execute(f"SET LOCAL search_path = {search_path}")
        finally:
            self._setting_search_path = False
        self.search_path_set_schemas = search_path

    def _commit(self) -> None:
        self.search_path_set_schemas = None
        super()._commit()

    def _rollback(self) -> None:
        self.search_path_set_schemas = None
        super()._rollback()

    def _savepoint_rollback(self, sid: str) -> None:
        self.search_path_set_schemas = None  # a SET LOCAL since the savepoint is undone
        super()._savepoint_rollback(sid)

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
