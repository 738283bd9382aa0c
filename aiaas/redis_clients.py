"""Named Redis connection pools, shared in a process.

`sync_client(name)` and `async_client(name)` return a client over the pool
`name` of settings.REDIS_POOLS (its role, size and timeouts); an unknown name is
an error, so every pool is configured in one place. A pool's role names the
server it talks to (`role_url`): data one process writes and another reads goes
through pools of the same role, so splitting roles across servers loses nothing. A sync pool is made once per
process and URL (redis-py gives a forked child fresh connections); an async
pool once per event loop, since an asyncio connection belongs to the loop
that opened it. Pools block for a free connection up to `pool_timeout`
instead of failing past their size (a Sentinel-discovered master's pool,
`redis+sentinel://host:26379,host2:26379/mymaster/0`, fails past it instead:
redis-py has no blocking Sentinel pool). Clients speak bytes (no decoding): the
stream queue and the Lua scripts compare raw bytes.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
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


SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelAddress:
    """`redis+sentinel://[[user]:password@]host:26379[,host:26379...]/service[/db]
    [?sentinel_username=...&sentinel_password=...]`: where the sentinels are, which
    master they watch, the master's credentials and the sentinels' own, if any
    (ADR 0038, 0050)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelAddress:
        parts = urlsplit(url)
        path = [segment for segment in parts.path.split("/") if segment]
        hosts = parts.netloc.rpartition("@")[2]
        malformed = ImproperlyConfigured(
            f"not a {SENTINEL_SCHEME}://host:port/service[/db][?sentinel_password=...] URL: {shown(url)!r}"
        )
        if parts.scheme != SENTINEL_SCHEME or not path or len(path) > 2 or not hosts:
            raise malformed
        try:
            pairs = [host.rpartition(":") for host in hosts.split(",")]
            sentinels = tuple((host or port, int(port) if host else 26379) for host, _, port in pairs)
            db = int(path[1]) if len(path) == 2 else 0
            options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
        except ValueError:
            raise malformed from None
        if set(options) - SENTINEL_OPTIONS:
            raise malformed
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(
            sentinels,
            path[0],
            db,
            username,
            password,
            options.get("sentinel_username") or None,
            options.get("sentinel_password"),
        )

    def credentials(self) -> dict[str, str]:
        """The master's username and password, as redis-py's connections take them."""
        given = {"username": self.username, "password": self.password}
        return {name: value for name, value in given.items() if value is not None}

    def sentinel_kwargs(self, timeouts: dict[str, float]) -> dict[str, Any]:
        """How redis-py (and kombu, Celery, channels_redis through it) talks to the
        sentinels themselves: the timeouts, and their own credentials if they need any."""
        given = {"username": self.sentinel_username, "password": self.sentinel_password}
        return {**timeouts, **{name: value for name, value in given.items() if value is not None}}

    def kwargs(self, config: PoolSettings) -> dict[str, Any]:
        return {
            "db": self.db,
            "max_connections": config.max_connections,
            "socket_timeout": config.socket_timeout,
            "socket_connect_timeout": config.socket_connect_timeout,
            **self.credentials(),
        }


SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})


def shown(url: str) -> str:
    """`url` with its passwords, the master's and the sentinels', masked."""
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":***@")
    return re.sub(r"(sentinel_password=)[^&]*", r"\1***", url)


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


# kombu and Celery reach the sentinels themselves; these bound each question to one.
CELERY_SENTINEL_KWARGS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


@dataclass(frozen=True)
class CeleryRedis:
    """kombu's and Celery's spelling of one of our Redis URLs: the broker (and result
    backend) URL, and the transport options it needs (a Sentinel's master name)."""

    url: str
    transport_options: dict[str, Any]


def celery_redis(url: str) -> CeleryRedis:
    """`redis+socket:///path` for a Unix socket; for a Sentinel, kombu's and Celery's own
    transport, `sentinel://h:p/db;sentinel://h:p/db` with the master's name as an option."""
    if is_sentinel_url(url):
        address = SentinelAddress.parse(url)
        userinfo = celery_userinfo(address)
        hosts = ";".join(
            f"sentinel://{userinfo}{host}:{port}/{address.db}" for host, port in address.sentinels
        )
        options = {
            "master_name": address.service,
            "sentinel_kwargs": address.sentinel_kwargs(CELERY_SENTINEL_KWARGS),
        }
        return CeleryRedis(hosts, options)
    parts = urlsplit(url)
    return CeleryRedis(f"redis+socket://{parts.path}" if parts.scheme == "unix" else url, {})


def celery_userinfo(address: SentinelAddress) -> str:
    """The master's credentials in each part of the URL: kombu reads the first's,
    Celery's result backend its first host's."""
    if address.username is None and address.password is None:
        return ""
    return f"{quote(address.username or '', safe='')}:{quote(address.password or '', safe='')}@"


def channel_layer_host(url: str) -> dict[str, Any]:
    """channels_redis's spelling of a Redis server, or of a Sentinel-watched master."""
    if not is_sentinel_url(url):
        return {"address": url}
    address = SentinelAddress.parse(url)
    host = {
        "sentinels": list(address.sentinels),
        "master_name": address.service,
        "db": address.db,
        **address.credentials(),
    }
    if address.sentinel_password is not None:
        host["sentinel_kwargs"] = address.sentinel_kwargs({})
    return host


@dataclass(frozen=True)
class PoolSettings:
    role: RedisRole = RedisRole.DEFAULT
    max_connections: int = 50
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 5.0
    pool_timeout: float = 5.0

    def timeouts(self) -> dict[str, float]:
        return {"socket_timeout": self.socket_timeout, "socket_connect_timeout": self.socket_connect_timeout}

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
                client = _sync_clients[cache_key] = new_sync_client(url, config)
    return client


def new_sync_client(url: str, config: PoolSettings) -> redis.Redis:
    if is_sentinel_url(url):
        address = SentinelAddress.parse(url)
        sentinel_kwargs = address.sentinel_kwargs(config.timeouts())
        sentinel = redis.sentinel.Sentinel(address.sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        master = sentinel.master_for(address.service, **address.kwargs(config))  # type: ignore[no-untyped-call]
        return cast("redis.Redis", master)
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, **config.pool_options()))


def new_async_client(name: str) -> aioredis.Redis:
    """A client over a pool of its own, configured as pool `name`: for an owner that
    closes it (the gateway's clients, one set per event loop). Needs no running loop;
    the pool connects inside the loop that first uses it."""
    config = pool_settings(name)
    url = role_url(config.role)
    if is_sentinel_url(url):
        address = SentinelAddress.parse(url)
        sentinel_kwargs = address.sentinel_kwargs(config.timeouts())
        sentinel = aiosentinel.Sentinel(address.sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        return cast("aioredis.Redis", sentinel.master_for(address.service, **address.kwargs(config)))
    pool = aioredis.BlockingConnectionPool.from_url(url, **config.pool_options())
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
