"""The platform served for real, once per test session: the simulated provider and
the platform's ASGI app, each by uvicorn in a thread, with the registry pointing
at the simulator. A pytest plugin (root conftest.py), so every app's tests share
the one server: the gateway's process-wide clients belong to its event loop."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from pytest_django import DjangoDbBlocker

from gateway.simulated.provider import SimulatorConfig
from routing.services import register_local_models, register_simulated_provider
from testing.servers import running_platform
from testing.simulated import running_simulated_provider

# Short faults and timeouts keep the suite fast; the registry's provider
# timeouts are what turn `no_response`, `slow_first_token` and `stream_stall`
# into timeouts.
SIMULATOR = SimulatorConfig(
    no_response_seconds=5,
    slow_first_token_seconds=5,
    stall_seconds=5,
    flap_down_seconds=1.0,
    flap_period_seconds=2.0,
)
PROVIDER_SLUG = f"simulated-test-{os.getpid()}"


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    with running_simulated_provider(SIMULATOR) as url:
        yield url


@pytest.fixture(scope="session")
def registry(django_db_setup: object, django_db_blocker: DjangoDbBlocker, simulator_url: str) -> str:
    with django_db_blocker.unblock():
        register_simulated_provider(
            simulator_url,
            slug=PROVIDER_SLUG,
            connect_timeout_seconds=1.0,
            first_token_timeout_seconds=0.5,
            total_timeout_seconds=4.0,
        )
        register_local_models()
    return PROVIDER_SLUG


@pytest.fixture(scope="session")
def platform_url(registry: str, django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    with running_platform() as url:
        yield url
    # The server's worker threads keep their database sessions; end them so the
    # test database can be dropped.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def gateway(platform_url: str, simulator_url: str) -> str:
    """The /v1 base URL, with fresh breakers and a fresh simulator for each test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client:
        for key in client.scan_iter(f"breaker:{{{PROVIDER_SLUG}:*"):
            client.delete(key)
    httpx.post(simulator_url.removesuffix("/v1") + "/_sim/reset", timeout=5).raise_for_status()
    return f"{platform_url}/v1"
