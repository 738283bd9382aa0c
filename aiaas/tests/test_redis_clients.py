"""Named Redis pools: configured in one place, shared in a process, one per event loop."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from aiaas.redis_clients import async_client, new_async_client, pool_settings, sync_client


def test_a_named_pool_is_shared_and_sized_from_settings() -> None:
    client = sync_client("control")

    assert sync_client("control") is client
    assert sync_client("queues") is not client
    assert client.ping() is True
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.0, 2.0)
    assert client.connection_pool.max_connections == pool_settings("control").max_connections


def test_an_unknown_pool_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="nowhere"):
        sync_client("nowhere")


def test_another_redis_url_gets_its_own_pool() -> None:
    with override_settings(REDIS_LIMITS_URL="unix:///nonexistent/redis.sock"):
        elsewhere = sync_client("control")

    assert elsewhere is not sync_client("control")
    assert elsewhere.connection_pool.connection_kwargs["path"] == "/nonexistent/redis.sock"


def test_each_event_loop_gets_its_own_async_client() -> None:
    async def clients() -> tuple[aioredis.Redis, aioredis.Redis]:
        first = async_client("realtime")
        assert await first.ping() is True
        return first, async_client("realtime")

    first_loop = asyncio.run(clients())
    second_loop = asyncio.run(clients())

    assert first_loop[0] is first_loop[1]
    assert second_loop[0] is not first_loop[0]


def test_an_owned_client_is_made_outside_a_loop_and_used_inside_one() -> None:
    client = new_async_client("gateway")  # no running loop here (agent runtimes build it so)
    pool = client.connection_pool

    async def use() -> bool:
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert pool.max_connections == pool_settings("gateway").max_connections
    assert new_async_client("gateway") is not client
    assert asyncio.run(use())
