"""Batches against real services: the served platform for the stock `openai` SDK, a
real Celery worker on a batches queue of this run's own, the simulated provider."""

from __future__ import annotations

import os
from collections.abc import Iterator

import openai
import pytest
from django.db import connection
from django.test import override_settings
from pytest_django import DjangoDbBlocker

from ingestion.runtime import close_runtime
from ingestion.tests.conftest import sdk
from testing.celery import worker_thread
from testing.tenants import TenantFixture


@pytest.fixture(scope="module")
def batches_worker(registry: str, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    queue_name = f"test-batches-{os.getpid()}"
    with (
        override_settings(BATCHES_QUEUE=queue_name),
        worker_thread(queue_name, django_db_blocker),
    ):
        yield queue_name


@pytest.fixture(autouse=True, scope="session")
def _close_runtime(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    yield
    close_runtime()
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def owner(platform_url: str, serving_tenant: TenantFixture) -> openai.OpenAI:
    return sdk(platform_url, serving_tenant.admin_key)


@pytest.fixture
def outsider(platform_url: str, other_tenant: TenantFixture) -> openai.OpenAI:
    return sdk(platform_url, other_tenant.admin_key)
