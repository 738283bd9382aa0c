"""Named Redis connection pools, shared in a process.

`sync_client(name)` and `async_client(name)` return a client over the pool
`name` of settings.REDIS_POOLS (its role, size and timeouts); an unknown name is
an error, so every pool is configured in one place. A pool's role names the
server it talks to (`role_url`): data one process writes and another reads goes
through pools of the same role, so splitting roles across servers loses nothing. A sync pool is made once per
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
from enum import StrEnum

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class RedisRole(StrEnum):
    """What a Redis server is used for; each is configured by its own URL (docs/scale.md)."""

    DEFAULT = "default"
    BROKER = "broker"
    CACHE = "cache"
    LIMITS = "limits"
    STREAMS = "streams"


def role_url(role: RedisRole) -> str:
    """The URL of the server holding `role`'s data (REDIS_<ROLE>_URL, else REDIS_URL)."""
    return str(getattr(settings, "REDIS_URL" if role is RedisRole.DEFAULT else f"REDIS_{role.name}_URL"))


@dataclass(frozen=True)
class PoolSettings:
    role: RedisRole = RedisRole.DEFAULT
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
        role=RedisRole(str(config.get("role", defaults.role))),
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
    config = pool_settings(name)
    url = role_url(config.role)
    cache_key = (name, url)
    client = _sync_clients.get(cache_key)
    if client is None:
        with _lock:
            client = _sync_clients.get(cache_key)
            if client is None:
                pool = redis.BlockingConnectionPool.from_url(url, **config.pool_options())
                client = _sync_clients[cache_key] = redis.Redis(connection_pool=pool)
    return client


def new_async_client(name: str) -> aioredis.Redis:
    """A client over a pool of its own, configured as pool `name`: for an owner that
    closes it (the gateway's clients, one set per event loop). Needs no running loop;
    the pool connects inside the loop that first uses it."""
    config = pool_settings(name)
    pool = aioredis.BlockingConnectionPool.from_url(role_url(config.role), **config.pool_options())
    return aioredis.Redis(connection_pool=pool)


def async_client(name: str = "default") -> aioredis.Redis:
    """This event loop's client over the async pool `name`. Call it inside a running loop."""
    loop = asyncio.get_running_loop()
    cache_key = (loop, name, role_url(pool_settings(name).role))
    client = _async_clients.get(cache_key)
    if client is None:
        with _lock:
            for stale in [key for key in _async_clients if key[0].is_closed()]:
                del _async_clients[stale]
            client = _async_clients[cache_key] = new_async_client(name)
    return client
