"""Ingestion against real services: the simulated provider in the registry (its
embedding models), the gateway in process, Redis streams, a Celery worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.test import override_settings
from pytest_django import DjangoDbBlocker

from agents.runtime import close_runtime
from aiaas.celery import app
from testing.celery import app_queues_restored


@pytest.fixture(scope="module")
def ingestion_worker(registry: str, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """A real worker thread on the real Redis broker, consuming an ingestion queue of this run's own."""
    queue_name = f"test-ingestion-{os.getpid()}"
    with (
        override_settings(INGESTION_QUEUE=queue_name),
        app_queues_restored(),
        django_db_blocker.unblock(),
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=[queue_name]),
    ):
        yield queue_name


@pytest.fixture(autouse=True, scope="session")
def _close_runtime(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """The in-process gateway's clients are closed at the end, and the database sessions
    its threads kept are ended, so the test database can be dropped."""
    yield
    close_runtime()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
