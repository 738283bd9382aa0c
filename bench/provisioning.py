"""Tenant provisioning: cloning the template schema against replaying every migration.

    python bench/provisioning.py --count 20 [--baseline-count 5] [--json PATH]

Needs DATABASE_URL, REDIS_URL and SECRET_KEY in the environment;
`make bench-provisioning` runs it under `python -m aiaas.launcher exec`, which
starts the embedded PostgreSQL and Redis.

Both sides go through the real service, tenants.services.provision_tenant
(schema, domain, owner user, admin API key). The baseline differs in one
setting only: with TENANT_CREATION_FAKES_MIGRATIONS off, django-tenants creates
an empty schema and runs every tenant migration instead of cloning
`tenant_template` and faking them. The two kinds of run are interleaved so the
drift of a noisy machine falls on both. Each run is also split into phases
(clone SQL, faked or real migrate_schemas, password hashing) by timing wrappers
around the library functions; the service code is not changed.

Every tenant and schema the run creates is deleted at the end, even on error.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import secrets
import string
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "provisioning.json"
CLONE = "clone"
MIGRATE = "migrate"
OWNER_EMAIL = "owner@bench.example"
# Phases, in the order the table prints them; nested ones are indented.
PHASES = (
    ("schema", "schema (Tenant.create_schema)"),
    ("clone_schema", "  clone_schema() SQL"),
    ("clone_function_install", "    install clone_schema function"),
    ("migrate_schemas_faked", "  migrate_schemas --fake"),
    ("migrate_schemas", "  migrate_schemas"),
    ("password_hash", "owner password hash"),
    ("rest", "rest (rows, key, checks)"),
)


@dataclass
class Sample:
    kind: str
    slug: str
    warmup: bool
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)


class PhaseClock:
    """Adds the time spent in wrapped functions to the current run's phases."""

    def __init__(self) -> None:
        self.current: dict[str, float] | None = None

    def timed(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                if self.current is not None:
                    self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    def timed_call_command(self, func: Callable[..., Any]) -> Callable[..., Any]:
        faked = self.timed("migrate_schemas_faked", func)
        real = self.timed("migrate_schemas", func)

        def call_command(*args: Any, **kwargs: Any) -> Any:
            return (faked if kwargs.get("fake") else real)(*args, **kwargs)

        return call_command


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="tenants provisioned by cloning (default 20)")
    parser.add_argument(
        "--baseline-count", type=int, default=5, help="tenants provisioned by migrating (default 5)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured runs of each kind first (default 1)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH, help="where to write the results")
    args = parser.parse_args(argv)
    if args.count < 1 or args.baseline_count < 1 or args.warmup < 0:
        parser.error("--count and --baseline-count must be at least 1, --warmup at least 0")
    return args


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()


@contextmanager
def phase_wrappers(clock: PhaseClock) -> Iterator[None]:
    import django.contrib.auth.base_user
    import django_tenants.models
    from django_tenants.clone import CloneSchema

    from tenants.models import Tenant

    with ExitStack() as stack:
        for target, attribute, name in (
            (Tenant, "create_schema", "schema"),
            (CloneSchema, "clone_schema", "clone_schema"),
            (CloneSchema, "_create_clone_schema_function", "clone_function_install"),
            (django.contrib.auth.base_user, "make_password", "password_hash"),
        ):
            original = getattr(target, attribute)
            stack.enter_context(mock.patch.object(target, attribute, clock.timed(name, original)))
        stack.enter_context(
            mock.patch.object(
                django_tenants.models,
                "call_command",
                clock.timed_call_command(django_tenants.models.call_command),
            )
        )
        yield


def schedule(count: int, baseline_count: int, warmup: int) -> list[tuple[str, bool]]:
    """Warm-up runs first, then both kinds spread evenly through the run."""
    measured = sorted(
        [((index + 0.5) / count, CLONE) for index in range(count)]
        + [((index + 0.5) / baseline_count, MIGRATE) for index in range(baseline_count)]
    )
    return [(kind, True) for _ in range(warmup) for kind in (CLONE, MIGRATE)] + [
        (kind, False) for _, kind in measured
    ]


def provision(kind: str, slug: str, warmup: bool, clock: PhaseClock) -> Sample:
    from django.test import override_settings

    from tenants.services import provision_tenant

    phases: dict[str, float] = {}
    clock.current = phases
    with ExitStack() as stack:
        if kind == MIGRATE:
            stack.enter_context(override_settings(TENANT_CREATION_FAKES_MIGRATIONS=False))
        start = time.perf_counter()
        provision_tenant(slug=slug, name=f"Bench {slug}", owner_email=OWNER_EMAIL)
        seconds = time.perf_counter() - start
    clock.current = None
    phases["rest"] = seconds - phases.get("schema", 0.0) - phases.get("password_hash", 0.0)
    return Sample(kind=kind, slug=slug, warmup=warmup, seconds=seconds, phases=phases)


def remove_tenants(slugs: list[str]) -> list[str]:
    """Delete the tenants and drop their schemas; return what could not be removed."""
    from django.db import DatabaseError, connection
    from django_tenants.utils import schema_exists

    from tenants.models import Tenant
    from tenants.services import schema_name_for

    failures = []
    for slug in slugs:
        try:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is not None:
                tenant.delete(force_drop=True)  # auto_drop_schema is False
            schema = schema_name_for(slug)
            if schema_exists(schema):  # left behind by a run that failed half-way
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP SCHEMA {connection.ops.quote_name(schema)} CASCADE")
        except DatabaseError as error:  # keep cleaning up the others
            failures.append(f"{slug}: {type(error).__name__}: {error}")
    return failures


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def describe(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "median": median(values),
        "p90": percentile(values, 90),
        "min": min(values),
        "max": max(values),
    }


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarize(samples: list[Sample]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for kind in (CLONE, MIGRATE):
        runs = [sample for sample in samples if sample.kind == kind and not sample.warmup]
        summary[kind] = {
            "total": describe([run.seconds for run in runs]),
            "phases": {
                name: describe([run.phases[name] for run in runs])
                for name, _ in PHASES
                if all(name in run.phases for run in runs)
            },
        }
    clone, migrate = summary[CLONE], summary[MIGRATE]
    summary["ratio_of_medians"] = {
        "total": migrate["total"]["median"] / clone["total"]["median"],
        "schema": migrate["phases"]["schema"]["median"] / clone["phases"]["schema"]["median"],
    }
    return summary


def environment() -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
            [settings.TENANT_BASE_SCHEMA],
        )
        template_tables = cursor.fetchone()[0]
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "postgresql": server_version,
        "django": version("Django"),
        "django_tenants": version("django-tenants"),
        "template_schema": settings.TENANT_BASE_SCHEMA,
        "template_tables": template_tables,
    }


def print_table(summary: dict[str, Any]) -> None:
    header = f"{'seconds per tenant':<38} {'n':>3} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}"

    def row(label: str, stats: dict[str, float | int]) -> str:
        return (
            f"{label:<38} {stats['n']:>3} {stats['median']:>8.3f} {stats['p90']:>8.3f}"
            f" {stats['min']:>8.3f} {stats['max']:>8.3f}"
        )

    print(header)
    print("-" * len(header))
    for kind, title in (
        (CLONE, "clone template (provision_tenant)"),
        (MIGRATE, "migrate baseline (provision_tenant)"),
    ):
        print(row(title, summary[kind]["total"]))
        for name, label in PHASES:
            if name in summary[kind]["phases"]:
                print(row("  " + label, summary[kind]["phases"][name]))
    ratios = summary["ratio_of_medians"]
    print("-" * len(header))
    print(f"ratio of medians, migrate / clone: {ratios['total']:.2f}x whole, {ratios['schema']:.2f}x schema")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("bootstrap", verbosity=0)
    run_id = "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    clock = PhaseClock()
    created: list[str] = []
    samples: list[Sample] = []
    started_at = datetime.now(UTC)
    try:
        with phase_wrappers(clock):
            for index, (kind, warmup) in enumerate(schedule(args.count, args.baseline_count, args.warmup)):
                slug = f"bench-{run_id}-{kind[0]}{index}"
                created.append(slug)
                samples.append(provision(kind, slug, warmup, clock))
                print(f"{kind:<8} {slug:<20} {samples[-1].seconds:7.3f} s{' (warm-up)' if warmup else ''}")
    finally:
        failures = remove_tenants(created)
        for failure in failures:
            print(f"cleanup failed: {failure}", file=sys.stderr)
    return {
        "benchmark": "tenant_provisioning",
        "started_at": started_at.isoformat(),
        "command": " ".join(["python", "bench/provisioning.py", *sys.argv[1:]]),
        "environment": environment(),
        "summary": summarize(samples),
        "samples": [asdict(sample) for sample in samples],
        "cleanup_failures": failures,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    setup_django()
    result = run(args)
    print()
    print_table(result["summary"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 1 if result["cleanup_failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
