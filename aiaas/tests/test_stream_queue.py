"""The durable stream queue on the real Redis: an entry leaves the stream only once
acknowledged, a dead consumer's entries are claimed by the next, dead letters
and acknowledgements land together. Each test uses streams of its own."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis
import redis.asyncio as aioredis

from aiaas.stream_queue import (
    CONSUMER_GROUP,
    DeadLetter,
    Entry,
    StreamQueue,
    StreamQueueUnavailableError,
    drain,
)

NO_REDIS = "unix:///nonexistent/redis.sock"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield connection
    connection.close()


@pytest.fixture
def queue(client: redis.Redis) -> Iterator[StreamQueue]:
    name = f"test-queue:{uuid.uuid4().hex}"
    yield StreamQueue(f"{name}:events", f"{name}:dead")
    client.delete(f"{name}:events", f"{name}:dead")


def append(queue: StreamQueue, *items: str) -> list[bytes]:
    async def appending() -> list[bytes]:
        async with aioredis.Redis.from_url(os.environ["REDIS_URL"]) as producer:
            return [await queue.append(producer, {"item": item}) for item in items]

    return asyncio.run(appending())


def dead_entries(client: redis.Redis, queue: StreamQueue) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(queue.dead_stream))


def items(entries: list[Entry]) -> list[bytes]:
    return [entry.fields[b"item"] for entry in entries]


def test_an_acknowledged_batch_leaves_the_stream_and_the_pending_list(
    client: redis.Redis, queue: StreamQueue
) -> None:
    ids = append(queue, "a", "b", "c")

    batch = queue.read_batch(client, "one", claim_idle_ms=60_000, batch_size=2)
    queue.acknowledge(client, batch)

    assert [entry.id for entry in batch] == ids[:2]
    assert items(batch) == [b"a", b"b"]
    assert client.xlen(queue.stream) == 1
    assert client.xpending(queue.stream, CONSUMER_GROUP)["pending"] == 0
    assert items(queue.read_batch(client, "one", claim_idle_ms=60_000, batch_size=10)) == [b"c"]


def test_entries_a_consumer_never_acknowledged_go_to_the_next_once_idle(
    client: redis.Redis, queue: StreamQueue
) -> None:
    append(queue, "a", "b")
    died_with = queue.read_batch(client, "died", claim_idle_ms=60_000, batch_size=10)

    while_fresh = queue.read_batch(client, "next", claim_idle_ms=60_000, batch_size=10)
    once_idle = queue.read_batch(client, "next", claim_idle_ms=0, batch_size=10)

    assert items(died_with) == [b"a", b"b"]
    assert while_fresh == []
    assert items(once_idle) == [b"a", b"b"]
    assert client.xlen(queue.stream) == 2  # read twice, acknowledged never: still queued


def test_dead_letters_keep_their_reason_and_source_with_the_acknowledgement(
    client: redis.Redis, queue: StreamQueue
) -> None:
    append(queue, "good", "bad")
    good, bad = queue.read_batch(client, "one", claim_idle_ms=60_000, batch_size=10)

    queue.acknowledge(client, [good, bad], [DeadLetter(bad, "malformed: no tenant")])

    [(_, dead)] = dead_entries(client, queue)
    assert dead == {b"item": b"bad", b"dead_reason": b"malformed: no tenant", b"dead_source_id": bad.id}
    assert client.xlen(queue.stream) == 0
    assert client.xpending(queue.stream, CONSUMER_GROUP)["pending"] == 0


def test_a_dead_letter_may_keep_only_named_fields(client: redis.Redis, queue: StreamQueue) -> None:
    append(queue, "secret content")
    [entry] = queue.read_batch(client, "one", claim_idle_ms=60_000, batch_size=10)

    queue.acknowledge(client, [entry], [DeadLetter(entry, "dropped", kept_fields=("request_id",))])

    [(_, dead)] = dead_entries(client, queue)
    assert dead == {b"dead_reason": b"dropped", b"dead_source_id": entry.id}


def test_a_pending_id_deleted_from_the_stream_is_acknowledged_not_wedged(
    client: redis.Redis, queue: StreamQueue
) -> None:
    ghost, kept = append(queue, "ghost", "kept")
    queue.read_batch(client, "died", claim_idle_ms=60_000, batch_size=10)
    client.xdel(queue.stream, ghost)

    claimed = queue.read_batch(client, "next", claim_idle_ms=0, batch_size=10)

    assert [entry.id for entry in claimed] == [kept]
    assert client.xpending(queue.stream, CONSUMER_GROUP)["pending"] == 1


def test_append_fails_with_its_own_error_when_redis_is_down(queue: StreamQueue) -> None:
    async def appending() -> None:
        async with aioredis.Redis.from_url(
            "unix:///nonexistent/redis.sock", socket_connect_timeout=1
        ) as down:
            await queue.append(down, {"item": "lost"})

    with pytest.raises(StreamQueueUnavailableError):
        asyncio.run(appending())


def test_drain_stops_at_the_first_short_batch() -> None:
    batches = iter([3, 3, 1, 3])

    assert drain(lambda size: next(batches), batch_size=3, time_budget_seconds=60) == 7


def test_drain_stops_when_its_time_budget_is_spent() -> None:
    calls: list[int] = []

    def full_batch(size: int) -> int:
        calls.append(size)
        return size

    assert drain(full_batch, batch_size=5, time_budget_seconds=0) == 5
    assert calls == [5]
