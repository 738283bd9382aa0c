"""Batch provisioning (tenants/batch.py) and `manage.py migrate_all` on a few tenants.

The tenants are committed by a module fixture, and migrate_all runs as a process
of its own against the test database: it migrates over connections of its own
(and forks workers), which must see them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from pytest_django import DjangoDbBlocker

from tenants.batch import TenantSpec, provision_tenants
from tenants.migrating import connection_info
from tenants.models import ApiKey, Domain, Tenant
from tenants.services import ProvisionedTenant, ProvisioningError

EVALS_ADDED_COLUMNS = {
    "evals_dataset": ["alert_email", "alert_webhook_url", "nightly_api_key_id", "nightly_model"],
    "evals_experiment": ["nightly_checked_at"],
}
EVALS_ADDING_MIGRATION = ("evals", "0003_ev_api_nightly")


@pytest.fixture(scope="module")
def batch(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[list[ProvisionedTenant]]:
    slugs = [f"batch-{os.getpid()}-{index}" for index in range(3)]
    with django_db_blocker.unblock():
        provisioned = provision_tenants(
            [TenantSpec(slug, f"Batch {slug}", "owner@batch.example") for slug in slugs]
        )
    yield provisioned
    with django_db_blocker.unblock():
        for tenant in Tenant.objects.filter(slug__in=slugs):
            tenant.delete(force_drop=True)


def tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def columns(schema: str, table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [schema, table],
        )
        return {row[0] for row in cursor.fetchall()}


def test_a_batch_gives_each_tenant_the_template_schema_a_domain_an_owner_and_a_key(
    batch: list[ProvisionedTenant],
) -> None:
    template_tables = tables(settings.TENANT_BASE_SCHEMA)
    assert "evals_dataset" in template_tables
    for item in batch:
        assert tables(item.tenant.schema_name) == template_tables
        assert Domain.objects.get(tenant=item.tenant).domain == f"{item.tenant.slug}.{settings.BASE_DOMAIN}"
        assert ApiKey.objects.get(pk=item.issued_key.api_key.pk).tenant_id == item.tenant.pk
        assert item.issued_key.secret.startswith(f"aiaas_{item.issued_key.api_key.prefix}_")
        assert not item.owner.has_usable_password()
        assert item.tenant.email_verified_at is not None
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{batch[0].tenant.schema_name}".django_migrations')  # noqa: S608
        recorded = cursor.fetchone()[0]
        cursor.execute(f'SELECT count(*) FROM "{settings.TENANT_BASE_SCHEMA}".django_migrations')  # noqa: S608
        assert recorded == cursor.fetchone()[0]


def test_a_batch_with_a_taken_or_repeated_slug_writes_nothing(batch: list[ProvisionedTenant]) -> None:
    before = Tenant.objects.count()
    fresh = f"fresh-{os.getpid()}"
    for specs in (
        [
            TenantSpec(fresh, "Fresh", "owner@batch.example"),
            TenantSpec(batch[0].tenant.slug, "Taken", "o@x.example"),
        ],
        [
            TenantSpec(fresh, "Fresh", "owner@batch.example"),
            TenantSpec(fresh, "Again", "owner@batch.example"),
        ],
        [TenantSpec(fresh, "Fresh", "not an email")],
    ):
        with pytest.raises(ProvisioningError):
            provision_tenants(specs)
    assert Tenant.objects.count() == before
    assert tables(f"t_fresh_{os.getpid()}") == set()


def migrate_all(*extra: str) -> str:
    """`manage.py migrate_all` in a process of its own, on the test database."""
    url = urlsplit(os.environ["DATABASE_URL"])
    test_database = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    result = subprocess.run(  # noqa: S603 - this interpreter, our command
        [sys.executable, "manage.py", "migrate_all", "--processes", "2", "--progress-every", "1", *extra],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": test_database, "DJANGO_SETTINGS_MODULE": "aiaas.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def roll_back_evals_0003(schema: str) -> None:
    """Leave `schema` one migration behind (evals.0003 only adds columns), committed."""
    with psycopg.connect(connection_info(), autocommit=True) as conn:
        for table, names in EVALS_ADDED_COLUMNS.items():
            for name in names:
                conn.execute(f'ALTER TABLE "{schema}".{table} DROP COLUMN {name}')
        conn.execute(
            f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s',  # noqa: S608
            EVALS_ADDING_MIGRATION,
        )


def assert_current(schema: str) -> None:
    for table, names in EVALS_ADDED_COLUMNS.items():
        assert set(names) <= columns(schema, table)
    with psycopg.connect(connection_info()) as conn:
        row = conn.execute(
            f'SELECT count(*) FROM "{schema}".django_migrations WHERE app = %s AND name = %s',  # noqa: S608
            EVALS_ADDING_MIGRATION,
        ).fetchone()
    assert row == (1,)


def test_migrate_all_replays_an_added_column_in_the_schemas_behind_only(
    batch: list[ProvisionedTenant],
) -> None:
    behind = batch[1].tenant.schema_name
    roll_back_evals_0003(behind)
    assert not set(EVALS_ADDED_COLUMNS["evals_dataset"]) & columns(behind, "evals_dataset")

    output = migrate_all()

    assert "1 of " in output
    assert "1 schemas by replaying the SQL of evals.0003_ev_api_nightly" in output
    assert "migrate_all: 1/1 tenant schemas (100%)" in output
    assert_current(behind)
    assert "0 of " in migrate_all()


def test_migrate_all_without_replay_runs_migrate_in_each_schema_behind(
    batch: list[ProvisionedTenant],
) -> None:
    behind = batch[2].tenant.schema_name
    roll_back_evals_0003(behind)

    output = migrate_all("--no-replay")

    assert "1 schemas through migrate_schemas" in output
    assert "migrate_all: 1/1 tenant schemas (100%)" in output
    assert_current(behind)
