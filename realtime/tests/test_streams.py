"""The per-stream event log, against the real Redis and channel layer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis
from django.conf import settings

from realtime import streams
from realtime.streams import StreamClosedError, StreamGapError, apublish, new_stream_id, publish

ALPHA = "t_alpha"
BETA = "t_beta"


def collect(schema: str, stream_id: str, after: int = 0) -> list[streams.StreamEvent]:
    async def run() -> list[streams.StreamEvent]:
        return [event async for event in streams.subscribe(schema, stream_id, after, poll_seconds=0.5)]

    return asyncio.run(asyncio.wait_for(run(), 10))


def test_new_stream_ids_carry_the_prefix_and_are_unique() -> None:
    first, second = new_stream_id("run"), new_stream_id("run")
    assert first.startswith("run_")
    assert len(first) == 36
    assert first != second
    with pytest.raises(ValueError, match="prefix"):
        new_stream_id("Run!")


def test_it_numbers_events_from_one_per_stream() -> None:
    one, two = new_stream_id("job"), new_stream_id("job")
    assert [publish(ALPHA, one, {"n": n}) for n in range(3)] == [1, 2, 3]
    assert publish(ALPHA, two, {"n": 0}) == 1
    events = streams.read(ALPHA, one)
    assert [(event.seq, event.event, event.final) for event in events] == [
        (1, {"n": 0}, False),
        (2, {"n": 1}, False),
        (3, {"n": 2}, False),
    ]
    assert [event.seq for event in streams.read(ALPHA, one, after=2)] == [3]


def test_concurrent_publishers_get_distinct_consecutive_seqs() -> None:
    stream_id = new_stream_id("run")

    async def run() -> list[int]:
        return list(await asyncio.gather(*(apublish(ALPHA, stream_id, {"n": n}) for n in range(50))))

    sync_seqs: list[int] = []
    thread = threading.Thread(
        target=lambda: sync_seqs.extend(publish(ALPHA, stream_id, {"s": n}) for n in range(20))
    )
    thread.start()
    async_seqs = asyncio.run(run())
    thread.join()
    assert sorted(async_seqs + sync_seqs) == list(range(1, 71))


def test_another_tenant_reads_nothing_of_a_stream() -> None:
    stream_id = new_stream_id("run")
    publish(ALPHA, stream_id, {"secret": "alpha"})
    assert streams.read(BETA, stream_id) == []
    assert publish(BETA, stream_id, {"other": "beta"}) == 1  # a different stream altogether
    assert [event.event for event in streams.read(ALPHA, stream_id)] == [{"secret": "alpha"}]


def test_a_missing_or_public_schema_is_refused() -> None:
    stream_id = new_stream_id("run")
    for schema in ("", "public", "t_alpha; DROP"):
        with pytest.raises(ValueError, match="not a tenant schema"):
            publish(schema, stream_id, {"n": 1})
    with pytest.raises(ValueError, match="not a stream id"):
        publish(ALPHA, "../other", {"n": 1})


def test_the_final_event_ends_the_stream() -> None:
    stream_id = new_stream_id("run")
    publish(ALPHA, stream_id, {"n": 1})
    assert publish(ALPHA, stream_id, {"done": True}, final=True) == 2
    with pytest.raises(StreamClosedError):
        publish(ALPHA, stream_id, {"late": True})
    assert [event.final for event in streams.read(ALPHA, stream_id)] == [False, True]


def test_retention_keeps_the_newest_events_for_a_bounded_time(settings: Any) -> None:
    settings.REALTIME_STREAM_MAX_EVENTS = 5
    settings.REALTIME_STREAM_TTL_SECONDS = 120
    stream_id = new_stream_id("run")
    for n in range(8):
        publish(ALPHA, stream_id, {"n": n})
    assert [event.seq for event in streams.read(ALPHA, stream_id)] == [4, 5, 6, 7, 8]
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        assert 0 < client.ttl(streams.log_key(ALPHA, stream_id)) <= 120
    with pytest.raises(StreamGapError, match="oldest retained is 4"):
        collect(ALPHA, stream_id, after=1)


def test_an_oversized_event_is_refused_and_not_logged() -> None:
    stream_id = new_stream_id("run")
    with pytest.raises(ValueError, match="at most"):
        publish(ALPHA, stream_id, {"text": "x" * settings.REALTIME_EVENT_MAX_BYTES})
    assert streams.read(ALPHA, stream_id) == []


def test_a_subscriber_gets_the_backlog_then_live_events_until_the_final_one() -> None:
    stream_id = new_stream_id("run")
    publish(ALPHA, stream_id, {"n": 1})
    publish(ALPHA, stream_id, {"n": 2})

    async def run() -> list[streams.StreamEvent]:
        async def follow() -> list[streams.StreamEvent]:
            return [event async for event in streams.subscribe(ALPHA, stream_id, after=1)]

        follower = asyncio.ensure_future(follow())
        await asyncio.sleep(0.2)
        for n in range(3, 6):
            await apublish(ALPHA, stream_id, {"n": n})
        await apublish(ALPHA, stream_id, {"n": 6}, final=True)
        return await asyncio.wait_for(follower, 10)

    events = asyncio.run(run())
    assert [(event.seq, event.event["n"]) for event in events] == [(n, n) for n in range(2, 7)]
    assert events[-1].final
    assert events[-1].message() == {"n": 6, "stream_id": stream_id, "seq": 6}


def test_a_cursor_fills_a_gap_in_live_messages_from_the_log() -> None:
    stream_id = new_stream_id("run")
    for n in range(1, 5):
        publish(ALPHA, stream_id, {"n": n})

    async def run() -> tuple[list[int], list[int], list[int]]:
        cursor = streams.Cursor(ALPHA, stream_id)
        first = await cursor.offer(streams.group_message(stream_id, 1, {"n": 1}, False))
        # seq 2 and 3 were lost on the way: 4 arrives, the cursor reads them from the log.
        filled = await cursor.offer(streams.group_message(stream_id, 4, {"n": 4}, False))
        late = await cursor.offer(streams.group_message(stream_id, 3, {"n": 3}, False))
        return [e.seq for e in first], [e.seq for e in filled], [e.seq for e in late]

    assert asyncio.run(run()) == ([1], [2, 3, 4], [])
