"""The gateway's key cache never keeps a copy that a change overtook."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection

from gateway.auth import ApiKeyCache
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture


def test_a_lookup_overtaken_by_an_eviction_is_served_but_not_cached(serving_tenant: TenantFixture) -> None:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="raced", scopes=[ApiKeyScope.INFERENCE])
    )
    prefix = issued.api_key.prefix

    async def race() -> tuple[bool, bool, bool]:
        lookups = ThreadPoolExecutor(max_workers=1)  # one thread, whose connection is closed after
        asyncio.get_running_loop().set_default_executor(lookups)
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = ApiKeyCache(client)
        try:
            await cache.resolve(f"aiaas_{'x' * 12}_{'y' * 43}")  # starts the listener, which then subscribes
            async with asyncio.timeout(5):
                while cache._evictions == 0:
                    await asyncio.sleep(0.01)
            lookup = asyncio.create_task(cache.resolve(issued.secret))
            await asyncio.sleep(0)  # the lookup now waits on its database thread
            cache.evict(prefix)  # as a change announced meanwhile would
            overtaken = await lookup
            was_cached = prefix in cache._entries
            again = await cache.resolve(issued.secret)
            return overtaken is not None, was_cached, again is not None and prefix in cache._entries
        finally:
            if cache._listener is not None:
                cache._listener.cancel()
            await client.aclose()
            lookups.submit(lambda: connection.close()).result()

    served, cached_after_race, cached_after_next_lookup = asyncio.run(race())

    assert (served, cached_after_race, cached_after_next_lookup) == (True, False, True)
