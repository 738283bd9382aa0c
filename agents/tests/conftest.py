"""Agents against real services: the simulated model provider registered in the
registry, a tool service over HTTP, signed manifests, and a real Celery worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from pytest_django import DjangoDbBlocker, Settings

from agents.runtime import close_runtime
from ingestion.runtime import close_runtime as close_ingestion_runtime
from routing.models import Provider
from routing.services import register_simulated_provider
from testing.agents import Ledger, running_tool_service, trust_signed_tools
from testing.celery import worker_thread
from testing.simulated import running_simulated_provider

PROVIDER_SLUG = f"simulated-test-{os.getpid()}"  # the slug routing's tests register too


def live_registration(django_db_blocker: DjangoDbBlocker) -> str | None:
    """The simulated provider this test run registered already (routing's tests do), if it answers."""
    with django_db_blocker.unblock():
        provider = Provider.objects.filter(slug=PROVIDER_SLUG).first()
    if provider is None:
        return None
    try:
        httpx.get(f"{provider.base_url}/models", timeout=2).raise_for_status()
    except httpx.HTTPError:
        return None
    return provider.base_url


@pytest.fixture(scope="session")
def agents_simulator(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """The registry's simulated provider. One that is registered and answering is reused:
    re-pointing the registry would move routing's tests onto another simulator."""
    with ExitStack() as stack:
        url = live_registration(django_db_blocker)
        if url is None:
            url = stack.enter_context(running_simulated_provider())
            with django_db_blocker.unblock():
                register_simulated_provider(
                    url,
                    slug=PROVIDER_SLUG,
                    connect_timeout_seconds=1.0,
                    first_token_timeout_seconds=2.0,
                    total_timeout_seconds=5.0,
                )
        yield url
        close_runtime()
        close_ingestion_runtime()  # retrieve steps search through it
        # Threads the in-process gateway used keep database sessions; end them so
        # the test database can be dropped.
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def simulator(agents_simulator: str) -> str:
    """The provider, with its breakers closed and its counters zeroed."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        for key in client.scan_iter(f"breaker:{{{PROVIDER_SLUG}:*"):
            client.delete(key)
    httpx.post(agents_simulator.removesuffix("/v1") + "/_sim/reset", timeout=5).raise_for_status()
    return agents_simulator


@pytest.fixture(scope="session")
def tool_ledger() -> Ledger:
    return Ledger()


@pytest.fixture(scope="session")
def tool_service(tool_ledger: Ledger) -> Iterator[str]:
    with running_tool_service(tool_ledger) as url:
        yield url


@pytest.fixture
def tools(tool_service: str, tool_ledger: Ledger, tmp_path: Path, settings: Settings) -> Ledger:
    """Signed, trusted manifests of the test tools; a fresh ledger; fresh tool breakers."""
    tool_ledger.reset()
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        for key in client.scan_iter("breaker:{tool:*"):
            client.delete(key)
    trust_signed_tools(tmp_path, tool_service, settings)
    return tool_ledger


@pytest.fixture(scope="module")
def runs_worker(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """A real worker thread on the real Redis broker, consuming a runs queue of this run's own."""
    queue_name = f"test-runs-{os.getpid()}"
    with (
        override_settings(AGENT_RUNS_QUEUE=queue_name),
        worker_thread(queue_name, django_db_blocker),
    ):
        yield queue_name
