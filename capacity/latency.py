"""Gateway overhead and upstream latency as the degrade evaluator reads them.

Each process counts its requests' times in a small histogram in memory (no I/O
on the request path) and adds it to Redis at most once a second, in a task of
its own after a request settles. Redis keeps one hash per kind and
WINDOW_SECONDS window for every process together; the evaluator sums the
windows of the last minute and reads the 95th percentile as the upper bound of
its bucket (an overestimate by at most one bucket).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import threading
import time
from collections.abc import Sequence
from enum import StrEnum

import redis
import redis.asyncio as aioredis

from aiaas.redis_keys import redis_key

logger = logging.getLogger(__name__)

BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
WINDOW_SECONDS = 10
FLUSH_SECONDS = 1.0
KEEP_SECONDS = 180
PERCENTILE = 0.95


class Kind(StrEnum):
    OVERHEAD = "overhead"  # the gateway's own time per request
    UPSTREAM = "upstream"  # time waiting on providers per request


def window_key(kind: Kind, window: int) -> str:
    return redis_key("capacity", "latency", kind.value, window)


class Recorder:
    """This process's counts since its last flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # in-process callers record from worker threads' loops too
        self._counts = self._empty()
        self._flushed_at = time.monotonic()

    @staticmethod
    def _empty() -> dict[Kind, list[int]]:
        return {kind: [0] * (len(BUCKETS_MS) + 1) for kind in Kind}

    def record(self, kind: Kind, seconds: float) -> None:
        index = bisect.bisect_left(BUCKETS_MS, seconds * 1000)
        with self._lock:
            self._counts[kind][index] += 1

    def take_if_due(self) -> dict[Kind, list[int]] | None:
        """The counts to flush (and a fresh start), at most once per FLUSH_SECONDS."""
        now = time.monotonic()
        with self._lock:
            if now - self._flushed_at < FLUSH_SECONDS:
                return None
            counts, self._counts, self._flushed_at = self._counts, self._empty(), now
        return counts


recorder = Recorder()
_flushes: set[asyncio.Task[None]] = set()


def flush_soon(client: aioredis.Redis) -> None:
    """Add this process's counts to Redis in a task of its own when a flush is due."""
    counts = recorder.take_if_due()
    if counts is None:
        return
    task = asyncio.get_running_loop().create_task(flush(client, counts, time.time()))
    _flushes.add(task)
    task.add_done_callback(_flushes.discard)


async def flush(client: aioredis.Redis, counts: dict[Kind, list[int]], now: float) -> None:
    window = int(now // WINDOW_SECONDS)
    pipe = client.pipeline(transaction=False)
    for kind, buckets in counts.items():
        key = window_key(kind, window)
        for index, count in enumerate(buckets):
            if count:
                pipe.hincrby(key, str(index), count)
        pipe.expire(key, KEEP_SECONDS)
    try:
        await pipe.execute()
    except (aioredis.RedisError, OSError):
        logger.warning("latency counts were not flushed; the evaluator misses %s", counts)
    except RuntimeError as error:  # the loop closed under the task: an in-process gateway shut down
        logger.warning("latency counts were not flushed (%s); the evaluator misses %s", error, counts)


def percentile_ms(
    client: redis.Redis, kind: Kind, seconds: int = 60, now: float | None = None, min_samples: int = 1
) -> float | None:
    """The 95th percentile of `kind` over the last `seconds`, every process together
    (None with fewer than `min_samples` requests in them)."""
    last = int((time.time() if now is None else now) // WINDOW_SECONDS)
    pipe = client.pipeline(transaction=False)
    for window in range(last - seconds // WINDOW_SECONDS, last + 1):
        pipe.hgetall(window_key(kind, window))
    totals = [0] * (len(BUCKETS_MS) + 1)
    for stored in pipe.execute():
        for index, count in stored.items():
            totals[int(index)] += int(count)
    return bucket_percentile(totals, PERCENTILE) if sum(totals) >= min_samples else None


def bucket_percentile(counts: Sequence[int], fraction: float) -> float | None:
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = math.ceil(total * fraction), 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return float(BUCKETS_MS[index]) if index < len(BUCKETS_MS) else float(BUCKETS_MS[-1] * 2)
    return float(BUCKETS_MS[-1] * 2)
