"""Migrating every tenant schema: which are behind, and the fast path for simple migrations.

Django's `migrate` costs about a quarter of a second of CPU per schema even for
one added column (it loads the migration graph, renders every app's models and
runs the post_migrate handlers), which at 10,000 schemas is most of an hour on
two cores (bench/README.md). When every migration a group of schemas lacks only
changes existing tables (the operations in REPLAYABLE: no new or deleted
models, so no content types or permissions to create, and no Python or raw SQL
to run), the SQL Django generates for them is the same in every schema: it is
generated once, then run in each schema with its django_migrations rows, one
transaction per schema, on parallel connections. Anything else goes through
django-tenants' executor (tenants/management/commands/migrate_all.py).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import psycopg
from django.conf import settings
from django.db import connection
from django.db.migrations import operations
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django_tenants.utils import schema_context
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tenants.services import known_migrations

Node = tuple[str, str]
REPLAYABLE = (
    operations.AddField,
    operations.RemoveField,
    operations.AlterField,
    operations.RenameField,
    operations.AddIndex,
    operations.RemoveIndex,
    operations.RenameIndex,
    operations.AddConstraint,
    operations.RemoveConstraint,
    operations.AlterUniqueTogether,
)
_CONNINFO_KEYS = {"dbname", "host", "port", "user", "password", "sslmode", "sslrootcert", "sslcert", "sslkey"}


def missing_by_schema(schemas: Iterable[str]) -> dict[frozenset[Node], list[str]]:
    """The schemas that lack migrations the code has, grouped by what they lack
    (one query each, about a millisecond)."""
    known = known_migrations()
    groups: dict[frozenset[Node], list[str]] = defaultdict(list)
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(schema)}.django_migrations")  # noqa: S608 - a schema name from our table
            missing = known - set(cursor.fetchall())
            if missing:
                groups[frozenset(missing)].append(schema)
    return dict(groups)


def replay_plan(missing: frozenset[Node]) -> list[Migration] | None:
    """The migrations in the order they apply, or None unless every one is replayable."""
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    ordered: list[Node] = []
    for target in sorted(missing):
        ordered.extend(
            node for node in graph.forwards_plan(target) if node in missing and node not in ordered
        )
    migrations = [graph.nodes[node] for node in ordered]
    if all(
        migration.atomic
        and migration.operations
        and all(isinstance(op, REPLAYABLE) for op in migration.operations)
        for migration in migrations
    ):
        return migrations
    return None


def replay_sql(migrations: list[Migration]) -> list[str]:
    """Their SQL as generated for the template, a tenant schema: django-tenants'
    router leaves the shared apps' tables out, as `migrate` would there."""
    executor = MigrationExecutor(connection)
    with schema_context(settings.TENANT_BASE_SCHEMA):
        plan = [(migration, False) for migration in migrations]
        collected = executor.loader.collect_sql(plan)  # type: ignore[attr-defined]  # not in django-stubs
    return [statement for statement in collected if not statement.lstrip().startswith("--")]


def connection_info() -> str:
    params = connection.get_connection_params()
    return make_conninfo(
        **{key: str(value) for key, value in params.items() if key in _CONNINFO_KEYS and value is not None}
    )


def replay(
    schemas: list[str],
    migrations: list[Migration],
    *,
    workers: int,
    on_done: Callable[[str], None],
) -> None:
    """Run the migrations' SQL in each schema, then record them there (one
    transaction per schema); `workers` connections at once."""
    statements = replay_sql(migrations)
    records = [(migration.app_label, migration.name) for migration in migrations]
    conninfo = connection_info()
    local = threading.local()
    opened: list[psycopg.Connection[tuple[object, ...]]] = []
    lock = threading.Lock()

    def migrate(schema: str) -> None:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(conninfo)
            with lock:
                opened.append(local.conn)
        conn = local.conn
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
            for statement in statements:
                conn.execute(statement.encode())
            conn.cursor().executemany(
                sql.SQL(
                    "INSERT INTO {}.django_migrations (app, name, applied) VALUES (%s, %s, now())"
                ).format(sql.Identifier(schema)),
                records,
            )
        on_done(schema)

    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(migrate, schemas))
    finally:
        for conn in opened:
            conn.close()
