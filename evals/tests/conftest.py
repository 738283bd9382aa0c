from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from pytest_django import DjangoDbBlocker

from ingestion.runtime import close_runtime


@pytest.fixture(autouse=True, scope="session")
def _close_runtime(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """Runs in process leave the gateway runtime's and threads' database sessions open:
    end them so the test database can be dropped."""
    yield
    close_runtime()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
