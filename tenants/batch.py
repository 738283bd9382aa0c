"""Tenant schemas made by replaying the template schema's dump; many tenants at once.

The template (`tenant_template`) is dumped with pg_dump (tables, sequences,
indexes, constraints) once per state of it and cached; a new schema is that
script run with the schema name replaced. Of the template's rows the dump
carries only those the code derives (TEMPLATE_TABLES_WITH_ROWS: the migration
records, so nothing is faked afterwards, and post_migrate's content types and
permissions); anything else written into the template stays there
(docs/decisions/0041).
`Tenant.create_schema` uses it for every signup (django-tenants' clone_schema()
slows with the size of the catalog: docs/tenant-scale.md), and
`provision_tenants` for thousands at once (an import, the tenant-scale bench),
writing the batch's rows in one transaction.

Batch owners get an unusable password (they set one through the password
reset) and an admin API key each, as `provision_tenant` gives.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_context
from psycopg.conninfo import make_conninfo

from accounts.models import Role, User
from aiaas.launcher import EMBEDDED_MARKER
from billing.models import Plan
from tenants.models import ApiKeyScope, Domain, Tenant
from tenants.services import (
    ProvisionedTenant,
    ProvisioningError,
    assert_template_is_current,
    create_api_key,
    resolve_plan,
    schema_name_for,
    tenant_domain_name,
    validate_owner_email,
    validate_slug,
)

# Session settings pg_dump emits for a restore; a batch runs in our own session,
# so they are dropped (every name in the dump is schema-qualified).
_SESSION_LINES = re.compile(r"^(SET |SELECT pg_catalog\.set_config\()")
# Renamed when what a dump holds changed: a dump cached with the template's rows is never replayed.
TEMPLATE_DUMP_CACHE_KEY = "tenants:template-structure:{fingerprint}"
# The template's tables whose rows every new schema needs, all derived from the code.
TEMPLATE_TABLES_WITH_ROWS = ("django_migrations", "django_content_type", "auth_permission")
_CONNINFO_KEYS = {"dbname", "host", "port", "user", "password", "sslmode", "sslrootcert", "sslcert", "sslkey"}


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    owner_email: str


def pg_dump_path() -> str:
    """PG_DUMP, else the embedded server's own (its version matches; development),
    else pg_dump on PATH."""
    if found := os.environ.get("PG_DUMP"):
        return found
    if os.environ.get(EMBEDDED_MARKER) == "1":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
            from pgserver.postgres_server import POSTGRES_BIN_PATH

        return str(Path(POSTGRES_BIN_PATH) / "pg_dump")
    if found := shutil.which("pg_dump"):
        return found
    raise ProvisioningError("pg_dump not found: install the PostgreSQL client or set PG_DUMP")


def pg_dump_available() -> bool:
    try:
        pg_dump_path()
    except ProvisioningError:
        return False
    return True


def template_dump() -> str:
    """The template schema's DDL and the rows of TEMPLATE_TABLES_WITH_ROWS, comments
    and session settings removed."""
    params = connection.get_connection_params()
    conninfo = make_conninfo(
        **{key: str(value) for key, value in params.items() if key in _CONNINFO_KEYS and value is not None}
    )
    command = [
        pg_dump_path(),
        f"--dbname={conninfo}",
        f"--schema={settings.TENANT_BASE_SCHEMA}",
        "--no-owner",
        "--no-privileges",
        "--inserts",
        "--rows-per-insert=1000",
        *(
            f'--exclude-table-data="{settings.TENANT_BASE_SCHEMA}"."{relation}"'
            for relation in template_relations_without_rows()
        ),
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True)  # noqa: S603 - pg_dump, our arguments
    if result.returncode:
        raise ProvisioningError(f"pg_dump of the template failed: {result.stderr.strip()}")
    dump = result.stdout
    return "\n".join(
        line
        for line in dump.splitlines()
        if line and not line.startswith("--") and not _SESSION_LINES.match(line)
    )


def template_relations_without_rows() -> list[str]:
    """The template's tables and sequences whose contents a dump leaves out: all but
    TEMPLATE_TABLES_WITH_ROWS and the sequences those own (their ids continue)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT relation.relname FROM pg_class relation
            JOIN pg_namespace schema ON schema.oid = relation.relnamespace
            WHERE schema.nspname = %(schema)s AND relation.relkind IN ('r', 'p', 'S')
              AND NOT relation.relname = ANY(%(kept)s)
              AND NOT EXISTS (
                SELECT 1 FROM pg_depend owned JOIN pg_class owner ON owner.oid = owned.refobjid
                WHERE owned.classid = 'pg_class'::regclass AND owned.objid = relation.oid
                  AND owned.deptype IN ('a', 'i') AND owner.relnamespace = schema.oid
                  AND owner.relname = ANY(%(kept)s)
              )
            ORDER BY relation.relname
            """,
            {"schema": settings.TENANT_BASE_SCHEMA, "kept": list(TEMPLATE_TABLES_WITH_ROWS)},
        )
        return [name for (name,) in cursor.fetchall()]


def template_fingerprint() -> str:
    """The database and the template's applied migrations: a dump is good while both stay."""
    with connection.cursor() as cursor:
        template = connection.ops.quote_name(settings.TENANT_BASE_SCHEMA)
        cursor.execute(f"SELECT count(*), max(id) FROM {template}.django_migrations")  # noqa: S608 - a setting
        count, last = cursor.fetchone()
    return f"{connection.settings_dict['NAME']}:{count}:{last}"


def cached_template_dump() -> str:
    """template_dump(), kept in the cache under the template's fingerprint.

    pg_dump reads the whole catalog, however little it dumps: 0.1 s on a new
    database, 27 s at 3,000 tenants (bench/README.md). `migrate_all` and
    `bootstrap` warm it after migrating the template, so signups do not wait.
    """
    key = TEMPLATE_DUMP_CACHE_KEY.format(fingerprint=template_fingerprint())
    dump = cache.get(key)
    if dump is None:
        dump = template_dump()
        cache.set(key, dump, timeout=None)
    return str(dump)


def create_schema_from_template(schema: str) -> None:
    """One tenant's schema from the cached dump, in its own transaction."""
    check_schema_name(schema)
    script = schema_script(cached_template_dump(), schema)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(script)


def clone_template(schema: str) -> None:
    """One tenant's schema where there is no pg_dump: django-tenants' clone_schema()
    of the template's structure, its sequences restarted, then the rows of
    TEMPLATE_TABLES_WITH_ROWS, as the dump carries them. Its own mode that
    copies rows would copy them all; and faking the migrations after a clone
    without rows, its other way, leaves no content types or permissions (a
    faked migration renders no models)."""
    check_schema_name(schema)
    with transaction.atomic():
        CloneSchema().clone_schema(settings.TENANT_BASE_SCHEMA, schema, "NODATA")
        with connection.cursor() as cursor:
            # The clone keeps the template's sequence positions; ids start at 1, as from the dump.
            cursor.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = %s", [schema])
            for (sequence,) in cursor.fetchall():
                cursor.execute(f"ALTER SEQUENCE {schema}.{connection.ops.quote_name(sequence)} RESTART")
            for table in TEMPLATE_TABLES_WITH_ROWS:
                source, target = f"{settings.TENANT_BASE_SCHEMA}.{table}", f"{schema}.{table}"
                cursor.execute(f"INSERT INTO {target} SELECT * FROM {source}")  # noqa: S608 - checked names
                cursor.execute(_CONTINUE_IDS.format(table=target), [target])


# The id sequence of a table whose rows were copied continues after their ids.
_CONTINUE_IDS = (
    "SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 1), max(id) IS NOT NULL) FROM {table}"
)


def check_schema_name(schema: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"not a schema name the dump can take unquoted: {schema!r}")


def schema_script(dump: str, schema: str) -> str:
    """`dump` creating `schema` instead of the template (names are [a-z0-9_], unquoted)."""
    return re.sub(rf"\b{re.escape(settings.TENANT_BASE_SCHEMA)}\b(?=[.;])", schema, dump)


def provision_tenants(
    specs: Sequence[TenantSpec], *, plan_slug: str | None = None, dump: str | None = None
) -> list[ProvisionedTenant]:
    """Create every tenant of `specs`: all of them or none (the schemas made are
    dropped if a later one or the rows fail).

    Checks what `provision_tenant` checks (slug free and well-formed, owner
    email, template current) before writing. `dump` defaults to the cached
    one (cached_template_dump()).
    """
    slugs = [spec.slug for spec in specs]
    if len(set(slugs)) != len(slugs):
        raise ProvisioningError("a slug appears twice in the batch")
    for spec in specs:
        if not spec.name.strip():
            raise ProvisioningError(f"{spec.slug}: name must not be empty")
        validate_slug(spec.slug)
        validate_owner_email(spec.owner_email)
    plan = resolve_plan(plan_slug)
    assert_template_is_current()
    script = dump if dump is not None else cached_template_dump()
    now = timezone.now()
    created: list[str] = []
    try:
        for spec in specs:
            # One transaction per schema: a schema takes about 170 locks, and the
            # lock table holds max_locks_per_transaction (64) per connection.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(schema_script(script, schema_name_for(spec.slug)))
            created.append(schema_name_for(spec.slug))
        return create_rows(specs, plan, now)
    except BaseException:
        drop_schemas(created)
        raise


def create_rows(specs: Sequence[TenantSpec], plan: Plan | None, now: datetime) -> list[ProvisionedTenant]:
    provisioned = []
    with transaction.atomic():
        tenants = Tenant.objects.bulk_create(
            Tenant(
                schema_name=schema_name_for(spec.slug),
                slug=spec.slug,
                name=spec.name.strip(),
                plan=plan,
                email_verified_at=now,
            )
            for spec in specs
        )
        domains = Domain.objects.bulk_create(
            Domain(domain=tenant_domain_name(tenant.slug), tenant=tenant, is_primary=True)
            for tenant in tenants
        )
        for spec, tenant, domain in zip(specs, tenants, domains, strict=True):
            with schema_context(tenant.schema_name):
                owner = User.objects.create_user(spec.owner_email, None, role=Role.OWNER)
            issued = create_api_key(
                tenant, name="Default admin key", scopes=[ApiKeyScope.ADMIN], created_by=owner.email
            )
            provisioned.append(ProvisionedTenant(tenant, domain, owner, None, issued))
    return provisioned


def drop_schemas(schemas: list[str]) -> None:
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema)} CASCADE")
