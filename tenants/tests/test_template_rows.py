"""A new tenant gets the template's structure, never its rows: an owner planted in
the template reaches no tenant, whether the schema is replayed from the template's
dump or cloned by django-tenants where there is no pg_dump. The rows the code
derives (migration records, content types, permissions) are there in both."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import Role, User
from aiaas.launcher import EMBEDDED_MARKER
from tenants.batch import (
    TEMPLATE_DUMP_CACHE_KEY,
    TEMPLATE_TABLES_WITH_ROWS,
    pg_dump_available,
    template_fingerprint,
)
from tenants.models import Tenant
from tenants.services import provision_tenant
from testing.database import committed

TEMPLATE = settings.TENANT_BASE_SCHEMA


@pytest.fixture
def planted(db: None) -> Iterator[str]:
    """An owner written into the template and committed (pg_dump reads it from
    another session); the cached dump is dropped, so the next one is taken with it."""
    email = f"planted-{secrets.token_hex(4)}@example.com"

    def plant() -> None:
        with schema_context(TEMPLATE):
            User.objects.create_user(email, "a-planted-passphrase", role=Role.OWNER)

    def remove() -> None:
        with schema_context(TEMPLATE):
            User.objects.filter(email=email).delete()

    committed(plant)
    cache.delete(TEMPLATE_DUMP_CACHE_KEY.format(fingerprint=template_fingerprint()))
    yield email
    committed(remove)
    cache.delete(TEMPLATE_DUMP_CACHE_KEY.format(fingerprint=template_fingerprint()))


@pytest.fixture
def without_pg_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PG_DUMP, no embedded server's, none on PATH: signups clone the template."""
    monkeypatch.delenv("PG_DUMP", raising=False)
    monkeypatch.delenv(EMBEDDED_MARKER, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not pg_dump_available()


def row_counts(schema: str) -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in TEMPLATE_TABLES_WITH_ROWS:
            cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')  # noqa: S608 - our names
            (counts[table],) = cursor.fetchone()
    return counts


def users_of(tenant: Tenant) -> list[str]:
    with schema_context(tenant.schema_name):
        return list(User.objects.order_by("email").values_list("email", flat=True))


def test_a_row_planted_in_the_template_does_not_reach_a_tenant_made_from_its_dump(planted: str) -> None:
    assert pg_dump_available()

    made = provision_tenant(slug="unplanted", name="Unplanted", owner_email="o@unplanted.example")

    assert users_of(made.tenant) == ["o@unplanted.example"]
    assert made.owner.pk == 1  # the template's sequences stay behind with its rows
    assert row_counts(made.tenant.schema_name) == row_counts(TEMPLATE)
    assert min(row_counts(TEMPLATE).values()) > 0


def test_a_row_planted_in_the_template_does_not_reach_a_cloned_tenant(
    planted: str, without_pg_dump: None
) -> None:
    made = provision_tenant(slug="cloned", name="Cloned", owner_email="o@cloned.example")

    assert users_of(made.tenant) == ["o@cloned.example"]
    assert made.owner.pk == 1
    assert row_counts(made.tenant.schema_name) == row_counts(TEMPLATE)
