"""Named Redis connection pools, shared in a process.

`sync_client(name)` and `async_client(name)` return a client over the pool
`name` of settings.REDIS_POOLS (its size and timeouts); an unknown name is an
error, so every pool is configured in one place. A sync pool is made once per
process and URL (redis-py gives a forked child fresh connections); an async
pool once per event loop, since an asyncio connection belongs to the loop
that opened it. Pools block for a free connection up to `pool_timeout`
instead of failing past their size. Clients speak bytes (no decoding): the
stream queue and the Lua scripts compare raw bytes.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class PoolSettings:
    max_connections: int = 50
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 5.0
    pool_timeout: float = 5.0

    def pool_options(self) -> dict[str, float | int]:
        """redis-py's BlockingConnectionPool arguments, sync and async alike."""
        return {
            "max_connections": self.max_connections,
            "timeout": self.pool_timeout,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
        }


def pool_settings(name: str) -> PoolSettings:
    """The configured size and timeouts of the pool `name`."""
    try:
        config = settings.REDIS_POOLS[name]
    except KeyError:
        raise ImproperlyConfigured(f"no Redis pool {name!r} in settings.REDIS_POOLS") from None
    defaults = PoolSettings()
    return PoolSettings(
        max_connections=int(config.get("max_connections", defaults.max_connections)),
        socket_timeout=float(config.get("socket_timeout", defaults.socket_timeout)),
        socket_connect_timeout=float(config.get("socket_connect_timeout", defaults.socket_connect_timeout)),
        pool_timeout=float(config.get("pool_timeout", defaults.pool_timeout)),
    )


_lock = threading.Lock()
_sync_clients: dict[tuple[str, str], redis.Redis] = {}
_async_clients: dict[tuple[asyncio.AbstractEventLoop, str, str], aioredis.Redis] = {}


def sync_client(name: str = "default") -> redis.Redis:
    """The process's client over the sync pool `name`. Never close it (`with` included)."""
    cache_key = (name, settings.REDIS_URL)
    client = _sync_clients.get(cache_key)
    if client is None:
        config = pool_settings(name)
        with _lock:
            client = _sync_clients.get(cache_key)
            if client is None:
                pool = redis.BlockingConnectionPool.from_url(settings.REDIS_URL, **config.pool_options())
                client = _sync_clients[cache_key] = redis.Redis(connection_pool=pool)
    return client


def new_async_client(name: str) -> aioredis.Redis:
    """A client over a pool of its own, configured as pool `name`: for an owner that
    closes it (the gateway's clients, one set per event loop). Needs no running loop;
    the pool connects inside the loop that first uses it."""
    pool = aioredis.BlockingConnectionPool.from_url(settings.REDIS_URL, **pool_settings(name).pool_options())
    return aioredis.Redis(connection_pool=pool)


def async_client(name: str = "default") -> aioredis.Redis:
    """This event loop's client over the async pool `name`. Call it inside a running loop."""
    loop = asyncio.get_running_loop()
    cache_key = (loop, name, settings.REDIS_URL)
    client = _async_clients.get(cache_key)
    if client is None:
        with _lock:
            for stale in [key for key in _async_clients if key[0].is_closed()]:
                del _async_clients[stale]
            client = _async_clients[cache_key] = new_async_client(name)
    return client
