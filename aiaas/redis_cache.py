"""Django's Redis cache, whose LOCATION may also name a master watched by Sentinel
(`redis+sentinel://host:26379[,host:26379]/service/db`, ADR 0050).

Django's RedisCacheClient builds a pool from a redis:// URL (and would split a
Sentinel URL's host list at its commas); here a Sentinel URL's client is redis-py's
Sentinel master client instead, which asks the sentinels where the master is and
asks again after a failover. Everything else (keys, serializer, timeouts) is Django's.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.sentinel
from django.core.cache.backends import redis as django_redis

from aiaas.redis_clients import SentinelAddress, is_sentinel_url

SENTINEL_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


class SentinelCacheClient(django_redis.RedisCacheClient):
    """Reads and writes go to the master: a replica may lag behind a write just made."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        address = SentinelAddress.parse(servers[0])
        timeouts = {name: options[name] for name in SENTINEL_TIMEOUTS if name in options}
        sentinel_kwargs = address.sentinel_kwargs(timeouts)
        sentinel = redis.sentinel.Sentinel(address.sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        master_options = {"db": address.db, **address.credentials(), **options}
        self._master: redis.Redis = sentinel.master_for(address.service, **master_options)  # type: ignore[no-untyped-call]

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        return self._master


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        if is_sentinel_url(server):
            self._servers = [server]
            self._class = SentinelCacheClient
