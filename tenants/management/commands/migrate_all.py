from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.test import override_settings
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand
from django_tenants.migration_executors.multiproc import MultiprocessingExecutor
from django_tenants.signals import schema_migrated

from tenants.batch import cached_template_dump, pg_dump_available
from tenants.migrating import missing_by_schema, replay, replay_plan
from tenants.models import Tenant
from tenants.services import ensure_public_tenant, ensure_template_schema


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
        "--progress-every schemas; schemas already current are skipped, and simple migrations are "
        "replayed as SQL (tenants/migrating.py). What deploys run before a rollout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--processes",
            type=int,
            default=os.cpu_count() or 1,
            help="Worker processes, each with one database connection (default: the CPU count).",
        )
        parser.add_argument("--progress-every", type=int, default=100, help="Schemas per progress line.")
        parser.add_argument(
            "--no-replay",
            action="store_true",
            help="Run `migrate` in every schema even when the SQL could be replayed (tenants/migrating.py).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = max(0, options["verbosity"] - 1)
        processes = max(1, options["processes"])
        started = time.monotonic()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        ensure_public_tenant()
        ensure_template_schema(verbosity=verbosity)
        if pg_dump_available():
            cached_template_dump()  # signups replay it (Tenant.create_schema)
        schemas = list(
            Tenant.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME).values_list(
                "schema_name", flat=True
            )
        )
        groups = missing_by_schema(schemas)
        behind = sum(len(group) for group in groups.values())
        self.stdout.write(
            f"migrate_all: public and template migrated; {behind} of {len(schemas)} tenant schemas"
            f" behind ({time.monotonic() - started:.1f} s)"
        )
        for missing, group in groups.items():
            plan = None if options["no_replay"] else replay_plan(missing)
            if plan is None:
                self.stdout.write(
                    f"migrate_all: {len(group)} schemas through migrate_schemas, one at a time each"
                )
                self.migrate_in_parallel(group, processes, options["progress_every"], verbosity)
            else:
                names = ", ".join(f"{migration.app_label}.{migration.name}" for migration in plan)
                self.stdout.write(f"migrate_all: {len(group)} schemas by replaying the SQL of {names}")
                progress = Progress(len(group), options["progress_every"])
                replay(group, plan, workers=processes, on_done=functools.partial(progress, None))
        self.stdout.write(f"migrate_all: done in {time.monotonic() - started:.1f} s")

    def migrate_in_parallel(self, schemas: list[str], processes: int, every: int, verbosity: int) -> None:
        class Behind(MultiprocessingExecutor):
            def run_migrations(self, tenants: Any = None) -> None:
                super().run_migrations(tenants=list(schemas))  # type: ignore[no-untyped-call]

        class MigrateBehind(MigrateSchemasCommand):
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
