"""A cap on each tenant's open WebSockets, across every process.

Each open socket holds a lease in its tenant's sorted set in Redis (member: the
socket's id, score: when its lease was last renewed). Opening one is one Lua
script: drop leases not renewed within LEASE_SECONDS (a process that died
without closing its sockets), then admit only under the cap. An open socket
renews its lease every RENEW_SECONDS and gives it back when it closes. So a
tenant never holds more than REALTIME_MAX_SOCKETS_PER_TENANT sockets at once,
and a crashed process's sockets stop counting within LEASE_SECONDS.
Redis unreachable: the socket is refused (fail closed, like the limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import redis.exceptions
from django.conf import settings

from aiaas.redis_clients import async_client
from aiaas.redis_keys import tenant_key

logger = logging.getLogger(__name__)
LEASE_SECONDS = 90
RENEW_SECONDS = 30

# KEYS: the tenant's lease set. ARGV: 1 socket id, 2 cap, 3 lease ms.
# Returns 1 when admitted, 0 at the cap.
OPEN = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS: the tenant's lease set. ARGV: 1 socket id, 2 lease ms. Renews a held lease.
RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now_ms, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class TooManySocketsError(Exception):
    """The tenant holds its cap of open sockets (or the cap cannot be checked)."""


def leases_key(tenant_id: int) -> str:
    return tenant_key("realtime", tenant_id, "sockets")


@contextlib.asynccontextmanager
async def socket_lease(tenant_id: int) -> AsyncIterator[None]:
    """Hold one of the tenant's socket leases while the block runs, renewing it;
    TooManySocketsError when the tenant is at its cap."""
    client = async_client("realtime")
    key, socket_id = leases_key(tenant_id), uuid.uuid4().hex
    lease_ms, cap = LEASE_SECONDS * 1000, settings.REALTIME_MAX_SOCKETS_PER_TENANT
    try:
        admitted = await client.eval(OPEN, 1, key, socket_id, cap, lease_ms)
    except (redis.exceptions.RedisError, OSError) as error:
        raise TooManySocketsError(f"socket leases unavailable: {error}") from error
    if not admitted:
        raise TooManySocketsError(f"at most {cap} open sockets")
    renewer = asyncio.get_running_loop().create_task(renew(key, socket_id, lease_ms))
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await client.zrem(key, socket_id)


async def renew(key: str, socket_id: str, lease_ms: int) -> None:
    client = async_client("realtime")
    while True:
        await asyncio.sleep(RENEW_SECONDS)
        try:
            await client.eval(RENEW, 1, key, socket_id, lease_ms)
        except (redis.exceptions.RedisError, OSError):
            logger.warning("socket lease %s not renewed", socket_id)
