"""One executor per run: a session-level PostgreSQL advisory lock per tenant schema and run.

The lock belongs to the executor's database session, so it is released when the
executor's process dies and its session ends. A session can outlive its worker
(a host that vanished leaves its backend waiting on TCP keepalives; a frozen
process keeps it idle): the sweeper ends such sessions (`end_holders`), and an
executor whose session was ended stops before its next write (`RunLock.held`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection

from tenants.context import current_schema_name

# How long the sweeper waits for an ended session to be gone (pg_terminate_backend's timeout).
END_SESSION_WAIT_MILLISECONDS = 5000


class LockLostError(RuntimeError):
    """The session that took the run's lock has ended: another executor may hold the run now."""


@dataclass(frozen=True)
class RunLock:
    run_id: int
    backend_pid: int

    def held(self) -> bool:
        """Whether this thread's connection is still the session that took the lock.
        No query: a session the sweeper ended is closed, or replaced by a new one."""
        current = connection.connection
        return current is not None and not current.closed and current.info.backend_pid == self.backend_pid

    def check(self) -> None:
        if not self.held():
            raise LockLostError(f"run {self.run_id}: the session holding its lock has ended")


def lock_key(schema_name: str, run_id: int) -> int:
    digest = hashlib.blake2b(f"agents-run:{schema_name}:{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def run_lock(run_id: int) -> Iterator[RunLock | None]:
    """The lock, if this connection now executes the run (in the current tenant schema); else None."""
    key = lock_key(current_schema_name(), run_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", [key])
        acquired, backend_pid = cursor.fetchone()
    try:
        yield RunLock(run_id, int(backend_pid)) if acquired else None
    finally:
        if acquired and connection.connection is not None and not connection.connection.closed:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def end_holders(schema_name: str, run_id: int) -> int:
    """End the other sessions holding the run's lock (its executor is presumed dead);
    how many. pg_locks shows a bigint key as its high half (classid) and low half (objid)."""
    unsigned = lock_key(schema_name, run_id) & 0xFFFF_FFFF_FFFF_FFFF
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND pid <> pg_backend_pid()",
            [END_SESSION_WAIT_MILLISECONDS, unsigned >> 32, unsigned & 0xFFFF_FFFF],
        )
        (ended,) = cursor.fetchone()
    return int(ended)
