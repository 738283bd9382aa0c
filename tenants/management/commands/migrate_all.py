from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import override_settings
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand
from django_tenants.migration_executors.multiproc import MultiprocessingExecutor
from django_tenants.signals import schema_migrated

from tenants.models import Tenant
from tenants.services import ensure_public_tenant, ensure_template_schema, known_migrations


class Progress:
    """Counts migrated schemas across the forked workers (a counter shared
    before the fork) and prints a line every `every` schemas and at the end."""

    def __init__(self, total: int, every: int) -> None:
        self.total = total
        self.every = max(1, every)
        self.done = multiprocessing.get_context("fork").Value("i", 0)
        self.started = time.monotonic()

    def __call__(self, sender: object, schema_name: str, **kwargs: Any) -> None:
        with self.done.get_lock():
            self.done.value += 1
            done = self.done.value
        if done % self.every == 0 or done == self.total:
            elapsed = time.monotonic() - self.started
            rate = done / elapsed if elapsed else 0.0
            sys.stdout.write(
                f"migrate_all: {done}/{self.total} tenant schemas ({100 * done // self.total}%)"
                f" {elapsed:.1f} s, {rate:.1f}/s\n"
            )
            sys.stdout.flush()


class Command(BaseCommand):
    help = (
        "Migrate the public schema, the tenant template, then every tenant schema in parallel "
        "worker processes (django-tenants' multiprocessing executor), with a progress line every "
        "--progress-every schemas; schemas already current are skipped. What deploys run before a rollout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--processes",
            type=int,
            default=os.cpu_count() or 1,
            help="Worker processes, each with one database connection (default: the CPU count).",
        )
        parser.add_argument("--progress-every", type=int, default=100, help="Schemas per progress line.")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = max(0, options["verbosity"] - 1)
        started = time.monotonic()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        ensure_public_tenant()
        ensure_template_schema(verbosity=verbosity)
        schemas = list(
            Tenant.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME).values_list(
                "schema_name", flat=True
            )
        )
        behind = schemas_behind(schemas)
        self.stdout.write(
            f"migrate_all: public and template migrated; {len(behind)} of {len(schemas)} tenant schemas"
            f" behind ({time.monotonic() - started:.1f} s)"
        )
        if behind:
            self.migrate_in_parallel(
                behind, max(1, options["processes"]), options["progress_every"], verbosity
            )
        self.stdout.write(f"migrate_all: done in {time.monotonic() - started:.1f} s")

    def migrate_in_parallel(self, schemas: list[str], processes: int, every: int, verbosity: int) -> None:
        class Behind(MultiprocessingExecutor):
            def run_migrations(self, tenants: Any = None) -> None:
                super().run_migrations(tenants=list(schemas))

        class MigrateBehind(MigrateSchemasCommand):  # type: ignore[misc]
            GET_EXECUTOR_FUNCTION = staticmethod(lambda codename=None: Behind)

        progress = Progress(len(schemas), every)
        schema_migrated.connect(progress, dispatch_uid="migrate_all-progress")
        # Chunks of schemas per task: large enough that the pool's messaging
        # does not dominate, small enough that the workers finish together.
        chunk = max(1, min(50, len(schemas) // (processes * 4)))
        try:
            with override_settings(
                TENANT_MULTIPROCESSING_MAX_PROCESSES=processes, TENANT_MULTIPROCESSING_CHUNKS=chunk
            ):
                call_command(MigrateBehind(), tenant=True, interactive=False, verbosity=verbosity)
        finally:
            schema_migrated.disconnect(dispatch_uid="migrate_all-progress")


def schemas_behind(schemas: list[str]) -> list[str]:
    """The schemas missing a migration the code has: one query each (about a
    millisecond), so a deploy with nothing new for tenants skips the seconds a
    `migrate` per schema costs (loading and rendering every app's state)."""
    known = known_migrations()
    behind = []
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(schema)}.django_migrations")  # noqa: S608 - a schema name from our table
            if not known <= set(cursor.fetchall()):
                behind.append(schema)
    return behind
