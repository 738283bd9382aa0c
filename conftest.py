"""Session fixtures: one migrated test database, the tenant template, and two
tenants (`alpha`, the tenant under test, and `beta`, the outsider) built once.
What every run changes in the settings is in testing/settings.py."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from tenants.context import activate_public_schema
from tenants.services import ensure_public_tenant, ensure_template_schema
from tenants.tests.factories import TenantFactory
from testing.tenants import TenantFixture

# The platform and the simulated provider served for real (simulator_url, registry,
# platform_url, gateway), shared by every app's tests.
pytest_plugins = ["testing.platform"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that reach the database through session fixtures (a server thread, say)
    need the test database as much as tests using `db`: mark them, or pytest-django
    would leave the connection on the development database. They may read through
    the `analytics` alias too (a mirror of the test database, analytics/routers.py)."""
    for item in items:
        if "django_db_setup" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.django_db(databases=["default", "analytics"]))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, TenantFixture]]:
    with django_db_blocker.unblock():
        if not connection.settings_dict["NAME"].startswith("test_"):
            raise RuntimeError("refusing to build test tenants outside a test database")
        ensure_public_tenant()
        ensure_template_schema()
        start_ids_at_random()
        tenants = {slug: TenantFactory.create(slug=slug) for slug in ("alpha", "beta", "serving")}
        activate_public_schema()
    yield tenants
    # Django closes the default connection before dropping the test database, not its mirror's.
    connections["analytics"].close()


def start_ids_at_random() -> None:
    """Redis keys of limits, budgets, idempotency and breakers carry tenant and key
    ids. Starting this run's ids at random keeps them apart from earlier runs' and
    from a development server's on the same Redis."""
    with connection.cursor() as cursor:
        for table in ("tenants_tenant", "tenants_apikey"):
            start = random.randint(10**6, 10**12)  # noqa: S311 - not a secret
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [start])


@pytest.fixture(autouse=True)
def _public_schema_between_tests() -> Iterator[None]:
    yield
    activate_public_schema()


@pytest.fixture
def tenant(django_db_setup: dict[str, TenantFixture], db: None) -> TenantFixture:
    """The tenant under test."""
    return django_db_setup["alpha"]


@pytest.fixture
def other_tenant(django_db_setup: dict[str, TenantFixture], db: None) -> TenantFixture:
    """A second tenant: its key and users must never reach `tenant`'s data."""
    return django_db_setup["beta"]


@pytest.fixture
def serving_tenant(django_db_setup: dict[str, TenantFixture]) -> TenantFixture:
    """A tenant for tests against live servers: what they commit (keys, say) outlives
    them, so it must not land in `tenant`, whose tests count exactly."""
    return django_db_setup["serving"]


@pytest.fixture
def api_client(tenant: TenantFixture) -> APIClient:
    return tenant.api_client()


@pytest.fixture
def outsider_client(other_tenant: TenantFixture) -> APIClient:
    return other_tenant.api_client()
