"""API keys on the gateway's hot path, without a database query per request.

A resolved key is cached in-process for KEY_CACHE_SECONDS, with its tenant,
plan and billing account. Every committed write of a key or its tenant
(revocation, scopes, expiry, the tenant's active flag or plan; through the
API, the dashboard or the admin) publishes the key's prefix on a Redis
channel that every gateway process listens to (tenants/gateway_cache.py), so
the change holds at once, not after the cache expires. A lookup that an
eviction overtook is not cached: it may have read the row before the write.
If the subscription drops, the cache is cleared before listening again, so
nothing changed meanwhile survives.

A wrong key is remembered (tenants/rejected_keys.py), so repeating it costs no
query; creating a key publishes its prefix on the same channel. At most
API_KEY_LOOKUP_CONCURRENCY lookups reach the database at once per process, so
a flood of wrong keys cannot take every connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings

from aiaas import logs
from gateway.errors import GatewayError
from tenants.gateway_cache import API_KEY_CHANGED_CHANNEL
from tenants.models import ApiKey
from tenants.rejected_keys import RejectedApiKeys, find_usable_api_key_remembering, rejected_api_keys
from tenants.selectors import API_KEY_PATTERN
from tenants.services import record_api_key_use

KEY_CACHE_SECONDS = 30.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CachedKey:
    api_key: ApiKey
    raw_key: str
    cached_at: float


class ApiKeyCache:
    def __init__(self, redis: aioredis.Redis, rejected: RejectedApiKeys = rejected_api_keys) -> None:
        self.redis = redis
        self.rejected = rejected
        self._entries: dict[str, CachedKey] = {}
        self._evictions = 0
        self._lookups = asyncio.Semaphore(settings.API_KEY_LOOKUP_CONCURRENCY)
        self._listener: asyncio.Task[None] | None = None

    async def resolve(self, raw_key: str) -> ApiKey | None:
        """The usable key for `raw_key`, or None."""
        self._ensure_listening()
        match = API_KEY_PATTERN.fullmatch(raw_key)
        if match is None:
            return None
        entry = self._entries.get(match["prefix"])
        now = time.monotonic()
        fresh = entry is not None and now - entry.cached_at < KEY_CACHE_SECONDS
        if fresh and entry is not None and entry.raw_key == raw_key and entry.api_key.is_usable():
            return entry.api_key
        if self.rejected.is_rejected(match["prefix"], raw_key):
            return None
        evictions = self._evictions
        async with self._lookups:
            api_key = await sync_to_async(find_usable_and_touch, thread_sensitive=False)(raw_key)
        if api_key is None:
            self._entries.pop(match["prefix"], None)
            return None
        if self._evictions == evictions:
            self._entries[match["prefix"]] = CachedKey(api_key, raw_key, now)
        return api_key

    def evict(self, prefix: str) -> None:
        self._evictions += 1
        self._entries.pop(prefix, None)
        self.rejected.forget_prefix(prefix)

    def evict_all(self) -> None:
        self._evictions += 1
        self._entries.clear()

    def _ensure_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(API_KEY_CHANGED_CHANNEL)
                    self.evict_all()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.evict(message["data"].decode())
            except (aioredis.RedisError, OSError) as error:
                logger.warning("api key change listener lost Redis: %s", error)
                self.evict_all()
                self.rejected.clear()  # a key created meanwhile must not stay refused
                await asyncio.sleep(1.0)  # a cancellation here ends the listener, as anywhere else


def find_usable_and_touch(raw_key: str) -> ApiKey | None:
    api_key = find_usable_api_key_remembering(raw_key)
    if api_key is not None:
        record_api_key_use(api_key)
    return api_key


async def authenticate(keys: ApiKeyCache, header: str, scope: str) -> ApiKey:
    """The key an Authorization header carries, with `scope` (HTTP requests and
    WebSocket handshakes), or a 401/403 GatewayError."""
    if not header:
        raise GatewayError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            "invalid_request_error",
            "missing_api_key",
        )
    kind, _, raw_key = header.partition(" ")
    api_key = await keys.resolve(raw_key.strip()) if kind.lower() == "bearer" else None
    if api_key is None:
        raise GatewayError(
            401, "Incorrect, revoked or expired API key provided.", "invalid_request_error", "invalid_api_key"
        )
    logs.bind(tenant_schema=api_key.tenant.schema_name, key_prefix=api_key.prefix)
    ensure_email_verified(api_key)
    if not api_key.has_scope(scope):
        raise GatewayError(
            403, f"This API key lacks the `{scope}` scope.", "permission_error", "insufficient_scope"
        )
    return api_key


def ensure_email_verified(api_key: ApiKey) -> None:
    """No model is called for a tenant whose owner has not confirmed their email,
    whoever calls: /v1 refuses its keys at authentication, and the gateway service
    checks again for the dashboard's playground and agent runs, open to an owner
    signed in by the signup's token (docs/decisions/0032)."""
    if not api_key.tenant.is_email_verified:
        raise GatewayError(
            403,
            "Confirm the owner's email address first: open the link we sent at signup.",
            "permission_error",
            "email_not_verified",
        )
