"""Idempotency keys: one core (rules, sealing, Redis stores) and thin adapters.

`aiaas.idempotency.core` holds the rules and the async and sync stores;
`aiaas.idempotency.starlette` adapts them to Starlette endpoints (the /v1
gateway); `tenants.api.idempotency` to DRF actions.
"""

from aiaas.idempotency.core import (
    HEADER,
    LOCK_SECONDS,
    REDIS_UNAVAILABLE,
    REPLAYED_HEADER,
    REPLAYED_HEADERS,
    TTL_SECONDS,
    Begin,
    Claim,
    IdempotencyError,
    IdempotencyStore,
    Outcome,
    ResponseRecord,
    SyncIdempotencyStore,
    is_storable,
    parse_key,
    redis_key,
    refusal_for,
    request_fingerprint,
    unavailable,
)

__all__ = [
    "HEADER",
    "LOCK_SECONDS",
    "REDIS_UNAVAILABLE",
    "REPLAYED_HEADER",
    "REPLAYED_HEADERS",
    "TTL_SECONDS",
    "Begin",
    "Claim",
    "IdempotencyError",
    "IdempotencyStore",
    "Outcome",
    "ResponseRecord",
    "SyncIdempotencyStore",
    "is_storable",
    "parse_key",
    "redis_key",
    "refusal_for",
    "request_fingerprint",
    "unavailable",
]
