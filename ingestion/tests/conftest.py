"""Ingestion against real services: the simulated provider in the registry (its
embedding models), the gateway in process, Redis streams, a Celery worker; and the
stock `openai` SDK against the served platform."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import openai
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from pytest_django import DjangoDbBlocker

from ingestion.runtime import close_runtime
from testing.celery import worker_thread
from testing.tenants import TenantFixture


@pytest.fixture(scope="module")
def ingestion_worker(registry: str, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """A real worker thread on the real Redis broker, consuming an ingestion queue of this run's own."""
    queue_name = f"test-ingestion-{os.getpid()}"
    with (
        override_settings(INGESTION_QUEUE=queue_name),
        worker_thread(queue_name, django_db_blocker),
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


def sdk(platform_url: str, key: str) -> openai.OpenAI:
    """The SDK on the platform's /v1. Django serves these routes: it answers a host
    ALLOWED_HOSTS names (the test server listens on 127.0.0.1)."""
    headers = {"Host": settings.BASE_DOMAIN}
    return openai.OpenAI(
        base_url=f"{platform_url}/v1", api_key=key, max_retries=0, timeout=20, default_headers=headers
    )


@pytest.fixture
def owner(platform_url: str, serving_tenant: TenantFixture) -> openai.OpenAI:
    """The serving tenant's SDK: what it creates is committed by the server."""
    return sdk(platform_url, serving_tenant.admin_key)


@pytest.fixture
def outsider(platform_url: str, other_tenant: TenantFixture) -> openai.OpenAI:
    return sdk(platform_url, other_tenant.admin_key)


@pytest.fixture
def embedding_model(registry: str) -> str:
    """The model new collections embed with (the local one, which the registry serves)."""
    return str(settings.INGESTION_EMBEDDING_MODEL)


@pytest.fixture
def uploaded(owner: openai.OpenAI) -> Iterator[str]:
    stored = owner.files.create(
        file=("notes.md", b"# Notes\n\nTenancy keeps data apart."), purpose="assistants"
    )
    yield stored.id
    with contextlib.suppress(openai.NotFoundError):
        owner.files.delete(stored.id)
