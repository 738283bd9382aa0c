"""Idempotent POST requests: an `Idempotency-Key` header makes a retry return the
first request's response instead of running it again. The rules and the Redis
stores live here; the adapters are thin: `aiaas.idempotency.starlette` (the /v1
gateway) and `tenants.api.idempotency` (DRF, through `SyncIdempotencyStore`).

- Scope. A key belongs to a tenant: it lives at `idem:{t<tenant_id>}:<sha256 of
  the key>`, so two tenants sending the same key never meet. The request's
  fingerprint (sha256 of method, path with query, the calling API key and the
  body, JSON canonicalised so key order and whitespace do not matter) is stored
  with it: the same key with anything else different gets 422
  `idempotency_key_mismatch`, so another API key of the same tenant never
  receives a response made for a key with other scopes or model rights.
- Header. 1-255 printable ASCII characters, else 400 `invalid_idempotency_key`.
  Without the header nothing is stored and nothing changes.
- Once. `begin` is one Lua script: the first request claims the key and runs;
  a duplicate while it runs gets 409 `idempotency_key_in_use` with
  `Retry-After: 1` at once; a duplicate after it gets the stored status,
  headers and body with `idempotent-replayed: true`.
- Lock. A running claim holds a lock of LOCK_SECONDS; an adapter may renew it
  (the gateway does, while its response streams, for at most MAX_RUN_SECONDS).
  A process that dies mid-request stops renewing, and the first retry after
  the lock lapses takes the run over; only the claim's current owner may
  complete or abandon it.
- What is stored. A final response, unless its status asks the client to try
  again (408, 409, 425, 429, 499, every 5xx: what OpenAI's and Stripe's SDKs
  retry with the same key), and an event stream only when it ended with
  `data: [DONE]`. A request that produced no storable response removes its
  claim, so a retry runs. The idempotency answers themselves are never stored.
- Size. A body is compressed above COMPRESS_ABOVE_BYTES and stored when its
  stored form fits MAX_STORED_BYTES; a larger one is recorded as done without a
  body: a duplicate gets 409 `idempotency_response_not_stored` and never runs.
- Secrecy. Stored bodies are sealed with AES-256-GCM under a key derived by
  HKDF-SHA256 from SECRET_KEY, the tenant and the raw Idempotency-Key (which
  Redis never sees, only its sha256), a random 96-bit nonce, and the record's
  identity (tenant, hashed key, fingerprint) as associated data. A Redis dump
  shows neither completions nor API key secrets. A body is sealed under the
  current secret and opened under it or any fallback (SECRET_KEY_FALLBACKS), so
  a rotated SECRET_KEY keeps stored bodies readable until the old key is
  dropped; one that fails authentication under every key (tampered with, or
  sealed under a key no longer listed) is treated as not stored. Status,
  content type and the replayed headers are stored in clear.
- Expiry. A key expires 24 h after its first use, whatever happens later.
- Redis down. `begin` failing is answered 503 `idempotency_unavailable` with
  Retry-After (fail closed: the caller asked for at-most-once).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import re
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
import redis.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aiaas.redis_keys import tenant_key

logger = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
TTL_SECONDS = 24 * 3600.0
LOCK_SECONDS = 60.0
# Renewals stop after this long, so a response nobody ever sends cannot hold a key.
MAX_RUN_SECONDS = 3600.0
MAX_STORED_BYTES = 1024 * 1024
COMPRESS_ABOVE_BYTES = 16 * 1024
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")
# "Try again" answers, never stored (see the module docstring).
RETRY_STATUSES = frozenset({408, 409, 425, 429, 499})
# Response headers a replay repeats (content-type is kept on its own); the
# rest describe the serving request (timings, rate-limit counters).
REPLAYED_HEADERS = frozenset(
    {
        "cache-control",
        "location",
        "x-request-id",
        "x-aiaas-model",
        "x-aiaas-tier",
        "x-aiaas-route-reason",
        "x-aiaas-attempts",
    }
)
STREAM_DONE = b"data: [DONE]\n\n"
# Sealing (see "Secrecy"): HKDF's salt and context, and AES-GCM's 96-bit nonce.
SEAL_SALT = b"aiaas.idempotency"
SEAL_INFO = b"aiaas.idempotency.v2"
NONCE_BYTES = 12
REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# Verdicts of BEGIN (the script declares the same numbers).
PROCEED, REPLAY, MISMATCH, IN_PROGRESS = 0, 1, 2, 3

_NOW = """
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function ms(value) return string.format('%.0f', value) end
"""

# KEYS: record. ARGV: fingerprint, token, lock_ms, ttl_ms.
# Returns {PROCEED} | {REPLAY, status, content_type, headers, body, replayable,
# created_at} | {MISMATCH} | {IN_PROGRESS, lock_remaining_ms}.
BEGIN = (
    _NOW
    + """
local PROCEED, REPLAY, MISMATCH, IN_PROGRESS = 0, 1, 2, 3
local now = now_ms()
local record = redis.call('HMGET', KEYS[1], 'fingerprint', 'state', 'lock_until')
if not record[1] then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'state', 'running', 'token', ARGV[2],
    'lock_until', ms(now + tonumber(ARGV[3])), 'created_at', ms(now))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {PROCEED}
end
if record[1] ~= ARGV[1] then return {MISMATCH} end
if record[2] == 'done' then
  local stored = redis.call('HMGET', KEYS[1], 'status', 'content_type', 'headers', 'body', 'replayable',
    'created_at')
  return {REPLAY, unpack(stored)}
end
local remaining = tonumber(record[3]) - now
if remaining > 0 then return {IN_PROGRESS, remaining} end
-- The owner stopped renewing its lock (its process died): this request takes
-- the run over. The expiry stays 24 h after the first use.
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'lock_until', ms(now + tonumber(ARGV[3])))
return {PROCEED}
"""
)

# KEYS: record. ARGV: token, status, content_type, headers, body, replayable.
# Returns 1 when stored, 0 when the claim is no longer this token's.
COMPLETE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'content_type', ARGV[3],
  'headers', ARGV[4], 'body', ARGV[5], 'replayable', ARGV[6])
redis.call('HDEL', KEYS[1], 'token', 'lock_until')
return 1
"""

# KEYS: record. ARGV: token. Returns 1 when the claim was removed.
ABANDON = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: record. ARGV: token, lock_ms. Returns 1 while the claim is this token's.
RENEW = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lock_until', ms(now_ms() + tonumber(ARGV[2])))
return 1
"""
)


class Outcome(enum.Enum):
    PROCEED = "proceed"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"


_OUTCOMES = {
    PROCEED: Outcome.PROCEED,
    REPLAY: Outcome.REPLAY,
    MISMATCH: Outcome.MISMATCH,
    IN_PROGRESS: Outcome.IN_PROGRESS,
}


@dataclass(frozen=True)
class Claim:
    """One request's hold on a key; only its `token` may complete or abandon it."""

    redis_key: str
    fingerprint: str
    token: str
    # The current secret's key first (the one that seals), then the fallbacks'.
    seal_keys: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class ResponseRecord:
    """A response as stored; `body` None means it was too large to keep."""

    status: int
    content_type: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Begin:
    outcome: Outcome
    claim: Claim
    stored: ResponseRecord | None = None


@dataclass
class IdempotencyError(Exception):
    """An answer the idempotency layer gives instead of running the request."""

    status: int
    error_type: str
    code: str
    message: str
    retry_after: int | None = None


def parse_key(value: str | None) -> str | None:
    """The client's key, None when the header is absent; 400 when malformed."""
    if value is None:
        return None
    if not KEY_PATTERN.fullmatch(value):
        raise IdempotencyError(
            400,
            "invalid_request_error",
            "invalid_idempotency_key",
            "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
        )
    return value


def canonical_body(body: bytes) -> bytes:
    """JSON with sorted keys and no whitespace, so equal documents fingerprint alike; other bytes as sent."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return body


def request_fingerprint(method: str, path: str, body: bytes, principal: str = "") -> str:
    """What a retry must repeat exactly: method, path with query, caller and body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), principal.encode(), canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def redis_key(tenant_id: int, key: str) -> str:
    """Where the record of tenant `tenant_id`'s Idempotency-Key `key` lives (the key itself hashed)."""
    return tenant_key("idem", tenant_id, hashlib.sha256(key.encode()).hexdigest())


def is_storable(record: ResponseRecord, ending: bytes = b"") -> bool:
    """Whether a sent response is final (see "What is stored"); `ending` is its
    last bytes, needed when the body was too large to keep."""
    if record.status in RETRY_STATUSES or record.status >= 500:
        return False
    is_event_stream = record.content_type.split(";")[0].strip() == "text/event-stream"
    if is_event_stream and 200 <= record.status < 300:
        # OpenAI's protocol: a stream without [DONE] is truncated.
        return (ending if record.body is None else record.body).endswith(STREAM_DONE)
    return True


def refusal_for(begun: Begin) -> IdempotencyError | None:
    """The answer for a request that must not run; None when it proceeds or replays."""
    if begun.outcome is Outcome.MISMATCH:
        return IdempotencyError(
            422,
            "invalid_request_error",
            "idempotency_key_mismatch",
            "This Idempotency-Key was already used with a different request (method, path, API key "
            "or body). Use a new key for a new request.",
        )
    if begun.outcome is Outcome.IN_PROGRESS:
        return IdempotencyError(
            409,
            "conflict_error",
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still being processed. Retry shortly.",
            retry_after=1,
        )
    if begun.outcome is Outcome.REPLAY and begun.stored is not None and begun.stored.body is None:
        return IdempotencyError(
            409,
            "conflict_error",
            "idempotency_response_not_stored",
            f"A request with this Idempotency-Key already completed (status {begun.stored.status}), but its "
            "response was too large to store for replay. Use a new key to run it again.",
        )
    return None


def unavailable() -> IdempotencyError:
    """The answer when Redis cannot be reached: fail closed."""
    return IdempotencyError(
        503,
        "service_unavailable_error",
        "idempotency_unavailable",
        "Idempotency keys are temporarily unavailable. Retry shortly.",
        retry_after=1,
    )


class _Codec:
    """The Redis arguments and replies shared by the async and the sync store."""

    def __init__(
        self, secret: str | bytes, fallbacks: Sequence[str | bytes], lock_seconds: float, ttl_seconds: float
    ) -> None:
        if not secret or not all(fallbacks):
            raise ValueError("a secret is required to seal stored responses")
        self.secrets = tuple(
            value.encode() if isinstance(value, str) else value for value in (secret, *fallbacks)
        )
        self.lock_ms = max(1, round(lock_seconds * 1000))
        self.ttl_ms = max(1, round(ttl_seconds * 1000))

    def claim(self, tenant_id: int, key: str, fingerprint: str) -> Claim:
        if isinstance(tenant_id, bool) or not isinstance(tenant_id, int) or tenant_id <= 0:
            raise ValueError("an idempotency key needs a tenant")
        seal_keys = tuple(seal_key(secret, tenant_id, key) for secret in self.secrets)
        return Claim(redis_key(tenant_id, key), fingerprint, uuid.uuid4().hex, seal_keys)

    def begin_args(self, claim: Claim) -> tuple[str | int, ...]:
        return (claim.fingerprint, claim.token, self.lock_ms, self.ttl_ms)

    def begun(self, claim: Claim, reply: Sequence[Any]) -> Begin:
        outcome = _OUTCOMES[int(reply[0])]
        if outcome is not Outcome.REPLAY:
            return Begin(outcome, claim)
        status, content_type, headers, body, replayable, created_at = reply[1:7]
        sealed = unseal(claim, body) if replayable == b"1" else None
        record = ResponseRecord(
            status=int(status),
            content_type=content_type.decode(),
            headers=tuple((name, value) for name, value in orjson.loads(headers)),
            body=None if sealed is None else _unpack(sealed),
            created_at=datetime.fromtimestamp(int(created_at) / 1000, tz=UTC),
        )
        return Begin(outcome, claim, record)

    def complete_args(self, claim: Claim, record: ResponseRecord) -> tuple[str | int | bytes, ...]:
        packed = None if record.body is None else _pack(record.body)
        replayable = packed is not None and len(packed) <= MAX_STORED_BYTES
        headers = orjson.dumps([[name.lower(), value] for name, value in record.headers])
        body = seal(claim, packed) if replayable and packed is not None else b""
        return (claim.token, record.status, record.content_type, headers, body, int(replayable))

    def renew_args(self, claim: Claim) -> tuple[str | int, ...]:
        return (claim.token, self.lock_ms)


def _pack(body: bytes) -> bytes:
    if len(body) > COMPRESS_ABOVE_BYTES:
        return b"z" + zlib.compress(body, 1)
    return b"r" + body


def _unpack(packed: bytes) -> bytes:
    return zlib.decompress(packed[1:]) if packed[:1] == b"z" else packed[1:]


def seal_key(secret: bytes, tenant_id: int, key: str) -> bytes:
    """The AES-256 key sealing tenant `tenant_id`'s bodies stored under the raw Idempotency-Key `key`."""
    info = b"\0".join((SEAL_INFO, str(tenant_id).encode(), key.encode()))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SEAL_SALT, info=info).derive(secret)


def _associated_data(claim: Claim) -> bytes:
    # The record's identity: a sealed body moved to another tenant's, key's or
    # request's record fails authentication there.
    return b"\0".join((SEAL_INFO, claim.redis_key.encode(), claim.fingerprint.encode()))


def seal(claim: Claim, plaintext: bytes) -> bytes:
    """`plaintext` encrypted and authenticated for `claim`'s record under the
    current secret: nonce, then ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(claim.seal_keys[0]).encrypt(nonce, plaintext, _associated_data(claim))


def unseal(claim: Claim, sealed: bytes) -> bytes | None:
    """What `seal` sealed for this record under the current secret or a fallback,
    or None when it fails authentication under every one."""
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    for key in claim.seal_keys:
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, _associated_data(claim))
        except (InvalidTag, ValueError):
            continue
    logger.warning("idempotency record %s: stored body fails authentication", claim.redis_key)
    return None


def _check_binary(connection_kwargs: Mapping[str, Any]) -> None:
    if connection_kwargs.get("decode_responses"):
        raise ValueError("the idempotency store needs a Redis client with decode_responses=False")


class IdempotencyStore:
    """Idempotency records in Redis, for asyncio callers (the gateway).

    Every transition is one Lua script on one key, timed by the Redis server's
    clock, so any number of processes agree on who runs a key. Bodies are sealed
    under `secret` and opened under it or any of `fallbacks` (the secrets it
    replaced, newest first).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        secret: str | bytes,
        *,
        fallbacks: Sequence[str | bytes] = (),
        lock_seconds: float = LOCK_SECONDS,
        ttl_seconds: float = TTL_SECONDS,
    ) -> None:
        _check_binary(client.connection_pool.connection_kwargs)
        self.lock_seconds = lock_seconds
        self._codec = _Codec(secret, fallbacks, lock_seconds, ttl_seconds)
        self._begin = client.register_script(BEGIN)
        self._complete = client.register_script(COMPLETE)
        self._abandon = client.register_script(ABANDON)
        self._renew = client.register_script(RENEW)

    async def begin(self, tenant_id: int, key: str, fingerprint: str) -> Begin:
        """Claim `key` for this request, or say why it must not run."""
        claim = self._codec.claim(tenant_id, key, fingerprint)
        reply = await self._begin(keys=[claim.redis_key], args=self._codec.begin_args(claim))
        return self._codec.begun(claim, reply)

    async def complete(self, claim: Claim, record: ResponseRecord) -> bool:
        """Store the response for replays; False when the claim was taken over meanwhile."""
        args = self._codec.complete_args(claim, record)
        return bool(await self._complete(keys=[claim.redis_key], args=args))

    async def abandon(self, claim: Claim) -> bool:
        """Remove a claim whose request produced no storable response, so a retry runs."""
        return bool(await self._abandon(keys=[claim.redis_key], args=[claim.token]))

    async def renew(self, claim: Claim) -> bool:
        """Extend the claim's lock; False once it is no longer this request's."""
        return bool(await self._renew(keys=[claim.redis_key], args=self._codec.renew_args(claim)))


class SyncIdempotencyStore:
    """The same records and scripts for synchronous callers (Django REST framework)."""

    def __init__(
        self,
        client: redis.Redis,
        secret: str | bytes,
        *,
        fallbacks: Sequence[str | bytes] = (),
        lock_seconds: float = LOCK_SECONDS,
        ttl_seconds: float = TTL_SECONDS,
    ) -> None:
        _check_binary(client.connection_pool.connection_kwargs)
        self._codec = _Codec(secret, fallbacks, lock_seconds, ttl_seconds)
        self._begin = client.register_script(BEGIN)
        self._complete = client.register_script(COMPLETE)
        self._abandon = client.register_script(ABANDON)

    def begin(self, tenant_id: int, key: str, fingerprint: str) -> Begin:
        claim = self._codec.claim(tenant_id, key, fingerprint)
        reply = self._begin(keys=[claim.redis_key], args=self._codec.begin_args(claim))
        return self._codec.begun(claim, reply)

    def complete(self, claim: Claim, record: ResponseRecord) -> bool:
        return bool(self._complete(keys=[claim.redis_key], args=self._codec.complete_args(claim, record)))

    def abandon(self, claim: Claim) -> bool:
        return bool(self._abandon(keys=[claim.redis_key], args=[claim.token]))
