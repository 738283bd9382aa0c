"""A cap on concurrent calls to one provider across every gateway process.

The slots are leases in one Redis sorted set per provider (member: a random
id, score: when the lease ends, by the Redis server's clock, so replicas'
clocks do not matter). One Lua script drops ended leases and adds one if
fewer than the cap remain: a round trip when a slot is free. A lease ends
when its call does, or, if its process died first, when the call's deadline
(plus a margin) passes: a dead replica's slots come back by themselves.
An unreachable Redis admits the call: the per-process bulkhead still bounds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator

import redis.exceptions
from redis.asyncio import Redis

from aiaas.redis_keys import redis_key
from gateway.resilience.bulkhead import BulkheadFullError

logger = logging.getLogger(__name__)

# A lease outlives its call's deadline by this much before another process may reuse it.
LEASE_MARGIN_SECONDS = 5.0
# Waiting callers poll for a freed slot, backing off from the first to the last delay.
FIRST_POLL_SECONDS = 0.005
LAST_POLL_SECONDS = 0.05
REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# KEYS[1]: the leases; ARGV: the cap, the lease in ms, the new lease's id. 1 if taken.
ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""


def leases_key(name: str) -> str:
    return redis_key("bulkhead", name)


class SharedBulkhead:
    """At most `max_concurrent` bodies of `slot(lease_seconds)` run at once across
    every process sharing the Redis; a caller waits up to `max_wait_seconds`, then
    gets BulkheadFullError. The lease is released however the body ends."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        max_concurrent: int,
        max_wait_seconds: float,
        lease_margin_seconds: float = LEASE_MARGIN_SECONDS,
    ) -> None:
        self.key = leases_key(name)
        self.lease_margin_seconds = lease_margin_seconds
        self.max_concurrent = max_concurrent
        self.max_wait_seconds = max_wait_seconds
        self._redis = redis
        self._acquire = redis.register_script(ACQUIRE)
        self._releasing: set[asyncio.Future[None]] = set()

    @contextlib.asynccontextmanager
    async def slot(self, lease_seconds: float) -> AsyncIterator[None]:
        lease = uuid.uuid4().hex
        taken = await self._take(lease, lease_seconds + self.lease_margin_seconds)
        try:
            yield
        finally:
            if taken:
                # In the background: the caller's answer does not wait for the round trip.
                release = asyncio.ensure_future(self._release(lease))
                self._releasing.add(release)
                release.add_done_callback(self._releasing.discard)

    async def _release(self, lease: str) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            await self._redis.zrem(self.key, lease)

    async def _take(self, lease: str, lease_seconds: float) -> bool:
        """True once the lease is held; False when Redis is unreachable (admitted unleased)."""
        arguments = (self.max_concurrent, math.ceil(lease_seconds * 1000), lease)
        give_up_at = time.monotonic() + self.max_wait_seconds
        delay = FIRST_POLL_SECONDS
        try:
            while not await self._acquire(keys=[self.key], args=arguments):
                if time.monotonic() + delay > give_up_at:
                    raise BulkheadFullError(self.max_concurrent, self.max_wait_seconds)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAST_POLL_SECONDS)
        except REDIS_UNAVAILABLE as error:
            logger.warning("shared bulkhead %s: Redis unreachable (%s), admitting the call", self.key, error)
            return False
        return True
