"""Waiting for a run to end on its live stream: a coroutine, not a thread polling PostgreSQL.

`POST /api/v1/agents/{id}/runs` with `wait` answers once the run has finished,
or after settings.AGENT_RUN_WAIT_SECONDS. The executor publishes every event
of a run to the run's stream (realtime.streams: a Redis log and its Channels
group), so the wait follows that stream on the server's event loop and holds
no database connection; the run itself is read before and after.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

import redis

from realtime import streams

logger = logging.getLogger(__name__)


async def until_finished(schema_name: str, stream_id: str, timeout_seconds: float) -> bool:
    """Whether the stream's final event arrived within `timeout_seconds`.

    The deadline holds whatever the stream does: a follower still leaving the
    stream's group then (a slow or reconnecting Redis) finishes in the background.
    A stream that cannot be followed (Redis unreachable, its events no longer
    retained) ends the wait early: the caller reads the run from the database
    either way, so it answers with the run as it is.
    """
    follow = asyncio.ensure_future(final_event_seen(schema_name, stream_id))
    try:
        done, _ = await asyncio.wait({follow}, timeout=timeout_seconds)
    finally:
        if not follow.done():
            follow.cancel()
            leaving.add(follow)
            follow.add_done_callback(left)
    if not done:
        return False
    try:
        return follow.result()
    except (redis.RedisError, OSError, streams.StreamGapError):
        logger.warning("the run stream %s could not be followed; the wait ends", stream_id, exc_info=True)
        return False


# Followers cut off at their deadline, until they have left their stream's group
# (the loop keeps only weak references to its tasks).
leaving: set[asyncio.Future[bool]] = set()


def left(follow: asyncio.Future[bool]) -> None:
    leaving.discard(follow)
    if not follow.cancelled() and follow.exception() is not None:
        logger.debug("a cut-off follower of a run stream failed", exc_info=follow.exception())


async def final_event_seen(schema_name: str, stream_id: str) -> bool:
    last = await streams.alast(schema_name, stream_id)
    if last is not None and last.final:
        return True
    async with aclosing(streams.subscribe(schema_name, stream_id, after=last.seq if last else 0)) as events:
        async for event in events:
            if event.final:
                return True
    return False
