"""The idempotency core on the real Redis: records sealed with AES-GCM, bound to
their tenant, key and request, and refused when tampered with."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from aiaas.idempotency import (
    Claim,
    Outcome,
    ResponseRecord,
    SyncIdempotencyStore,
    redis_key,
    request_fingerprint,
)
from aiaas.idempotency.core import NONCE_BYTES, seal, seal_key, unseal

SECRET = "test-secret-for-the-idempotency-core"
SECRET_BODY = b'{"api_key": "sk_live_the-launch-code-0000"}'


TENANT_IDS = 9 * 10**12  # far above the test run's real tenants


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield connection
    for name in connection.scan_iter(match="idem:{t9????????????}:*"):
        connection.delete(name)
    connection.close()


def new_tenant_id() -> int:
    return TENANT_IDS + uuid.uuid4().int % 10**12


def stored_once(store: SyncIdempotencyStore, tenant_id: int, key: str, body: bytes = SECRET_BODY) -> str:
    fingerprint = request_fingerprint("POST", "/api/v1/keys", b"{}", "api-key:1")
    begun = store.begin(tenant_id, key, fingerprint)
    assert begun.outcome is Outcome.PROCEED
    assert store.complete(begun.claim, ResponseRecord(201, "application/json", (), body))
    return fingerprint


def test_a_stored_body_cannot_be_read_from_redis(client: redis.Redis) -> None:
    store, tenant_id, key = SyncIdempotencyStore(client, SECRET), new_tenant_id(), f"k-{uuid.uuid4()}"
    fingerprint = stored_once(store, tenant_id, key)

    record = cast(dict[bytes, bytes], client.hgetall(redis_key(tenant_id, key)))
    everything = b"".join([*record.keys(), *record.values(), redis_key(tenant_id, key).encode()])

    assert b"launch-code" not in everything
    assert key.encode() not in everything
    assert len(record[b"body"]) == NONCE_BYTES + 1 + len(SECRET_BODY) + 16  # nonce, packed body, GCM tag
    replay = store.begin(tenant_id, key, fingerprint)
    assert replay.outcome is Outcome.REPLAY
    assert replay.stored is not None
    assert replay.stored.body == SECRET_BODY


def test_a_tampered_body_is_detected_and_never_replayed(client: redis.Redis) -> None:
    store, tenant_id, key = SyncIdempotencyStore(client, SECRET), new_tenant_id(), f"k-{uuid.uuid4()}"
    fingerprint = stored_once(store, tenant_id, key)
    sealed = bytearray(cast(bytes, client.hget(redis_key(tenant_id, key), "body")))
    sealed[NONCE_BYTES + 3] ^= 0x01
    client.hset(redis_key(tenant_id, key), "body", bytes(sealed))

    replay = store.begin(tenant_id, key, fingerprint)

    assert replay.outcome is Outcome.REPLAY
    assert replay.stored is not None
    assert replay.stored.status == 201
    assert replay.stored.body is None


def test_a_body_copied_to_another_tenants_record_does_not_open(client: redis.Redis) -> None:
    store, key = SyncIdempotencyStore(client, SECRET), f"k-{uuid.uuid4()}"
    ours, theirs = new_tenant_id(), new_tenant_id()
    fingerprint = stored_once(store, ours, key)
    stored_once(store, theirs, key, b'{"other": "body"}')
    client.hset(redis_key(theirs, key), "body", client.hget(redis_key(ours, key), "body") or b"")

    replay = store.begin(theirs, key, fingerprint)

    assert replay.stored is not None
    assert replay.stored.body is None


def test_another_secret_key_cannot_open_a_stored_body(client: redis.Redis) -> None:
    tenant_id, key = new_tenant_id(), f"k-{uuid.uuid4()}"
    fingerprint = stored_once(SyncIdempotencyStore(client, SECRET), tenant_id, key)

    replay = SyncIdempotencyStore(client, "a-rotated-secret").begin(tenant_id, key, fingerprint)

    assert replay.outcome is Outcome.REPLAY
    assert replay.stored is not None
    assert replay.stored.body is None


def test_a_rotated_store_opens_bodies_sealed_under_its_fallback(client: redis.Redis) -> None:
    tenant_id, key = new_tenant_id(), f"k-{uuid.uuid4()}"
    fingerprint = stored_once(SyncIdempotencyStore(client, SECRET), tenant_id, key)

    replay = SyncIdempotencyStore(client, "a-rotated-secret", fallbacks=[SECRET]).begin(
        tenant_id, key, fingerprint
    )

    assert replay.stored is not None
    assert replay.stored.body == SECRET_BODY


def test_a_rotated_store_seals_under_its_new_secret(client: redis.Redis) -> None:
    tenant_id, key = new_tenant_id(), f"k-{uuid.uuid4()}"
    rotated = SyncIdempotencyStore(client, "a-rotated-secret", fallbacks=[SECRET])
    fingerprint = stored_once(rotated, tenant_id, key)

    by_the_old_secret = SyncIdempotencyStore(client, SECRET).begin(tenant_id, key, fingerprint)
    by_the_new_alone = SyncIdempotencyStore(client, "a-rotated-secret").begin(tenant_id, key, fingerprint)

    assert by_the_old_secret.stored is not None
    assert by_the_old_secret.stored.body is None
    assert by_the_new_alone.stored is not None
    assert by_the_new_alone.stored.body == SECRET_BODY


def test_each_tenant_and_key_seal_under_their_own_key() -> None:
    keys = {
        seal_key(SECRET.encode(), 1, "a"),
        seal_key(SECRET.encode(), 2, "a"),
        seal_key(SECRET.encode(), 1, "b"),
        seal_key(b"another secret", 1, "a"),
    }

    assert len(keys) == 4
    assert all(len(key) == 32 for key in keys)


def test_sealing_twice_uses_fresh_nonces() -> None:
    claim = Claim(redis_key(1, "k"), "fingerprint", "token", (seal_key(SECRET.encode(), 1, "k"),))

    first, second = seal(claim, b"same"), seal(claim, b"same")

    assert first[:NONCE_BYTES] != second[:NONCE_BYTES]
    assert unseal(claim, first) == unseal(claim, second) == b"same"
