"""Behind PgBouncer in transaction mode, with DATABASE_TRANSACTION_POOLING, two
tenants' queries never run with each other's search_path, under concurrency:
eight threads in a child process, two server connections between them.
Skipped when the pgbouncer binary is missing (`apt-get install pgbouncer`)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from pytest_django import DjangoDbBlocker

from testing.database import committed

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)"
)
SCHEMAS = ("pgbouncer_a", "pgbouncer_b")
CLIENTS = """
import contextlib, sys, threading, django
django.setup()
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

seen = []

def read(schema, atomic):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM marker")
            seen.append((schema, cursor.fetchone()[0]))
    except DatabaseError:  # no marker table on the search_path it ran with
        seen.append((schema, None))
        if atomic:
            raise

def work(schema):
    for round in range(30):
        with schema_context(schema):
            if round % 2:
                with contextlib.suppress(DatabaseError), transaction.atomic():
                    read(schema, True)
                    read(schema, True)
            else:
                read(schema, False)
    connection.close()

threads = [threading.Thread(target=work, args=(schema,)) for schema in sys.argv[1:] * 4]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(seen), sum(schema != name for schema, name in seen))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def create_marked_schemas() -> None:
    with connection.cursor() as cursor:
        for schema in SCHEMAS:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cursor.execute(f"CREATE SCHEMA {schema}")
            cursor.execute(f"CREATE TABLE {schema}.marker (name text)")
            cursor.execute(f"INSERT INTO {schema}.marker VALUES ('{schema}')")  # noqa: S608 - constants


def drop_marked_schemas() -> None:
    with connection.cursor() as cursor:
        for schema in SCHEMAS:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def marked_schemas(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """Two schemas, each with a row naming it, committed where the child sees them."""
    with django_db_blocker.unblock():
        committed(create_marked_schemas)
    yield
    with django_db_blocker.unblock():
        committed(drop_marked_schemas)


@pytest.fixture
def pgbouncer(tmp_path: Path) -> Iterator[int]:
    """PgBouncer in transaction mode with two server connections, before this test
    run's PostgreSQL (its Unix socket folder, as that folder's owner when root)."""
    params = connection.get_connection_params()
    port, socket_dir = free_port(), str(params["host"])
    (tmp_path / "users.txt").write_text('"postgres" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={socket_dir} port={params.get('port') or 5432}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {tmp_path / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 2\nmax_client_conn = 100\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    tmp_path.chmod(0o755)
    user = ["-u", pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name] if os.geteuid() == 0 else []
    process = subprocess.Popen(  # noqa: S603 (the installed binary, our config)
        [str(PGBOUNCER), *user, str(tmp_path / "pgbouncer.ini")], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert process.poll() is None, "pgbouncer exited"
            assert time.monotonic() < deadline, "pgbouncer did not listen"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_clients(port: int, transaction_pooling: bool) -> tuple[int, int]:
    database = connection.settings_dict["NAME"]
    result = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", CLIENTS, *SCHEMAS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "aiaas.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/{database}",
            "DATABASE_TRANSACTION_POOLING": str(transaction_pooling).lower(),
        },
    )
    total, wrong = result.stdout.split()
    return int(total), int(wrong)


def test_no_tenant_sees_anothers_search_path_behind_transaction_pooling(
    marked_schemas: None, pgbouncer: int
) -> None:
    assert run_clients(pgbouncer, transaction_pooling=True) == (360, 0)


def test_session_search_paths_do_mix_behind_transaction_pooling(marked_schemas: None, pgbouncer: int) -> None:
    """The control: django-tenants' session-wide SET is unsafe there, as docs/scale.md says."""
    _, wrong = run_clients(pgbouncer, transaction_pooling=False)
    assert wrong > 0  # 70 of 360 reads when written
