"""Celery in the metrics: each task's run time and outcome (signals, in every
worker process), and every queue's depth with the usage queue's, sampled by a
task beat sends (`sample_queues`), so a stuck consumer shows as a growing gauge."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun
from django.conf import settings

from aiaas.observability.metrics import (
    CELERY_QUEUE_LENGTH,
    CELERY_TASK_DURATION,
    CELERY_TASKS,
    USAGE_FLUSH_LAG,
    USAGE_STREAM_LENGTH,
    series,
)
from aiaas.redis_clients import sync_client

# kombu's Redis transport keeps a queue's priorities 3, 6 and 9 in lists of their own.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
# A run's start, by task id: prerun and postrun come from the same worker process.
_started: dict[str, float] = {}


def queue_of(task: Task) -> str:
    delivery = task.request.delivery_info or {}
    return str(delivery.get("routing_key") or "direct")


@task_prerun.connect  # type: ignore[untyped-decorator]
def start_timing(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@task_postrun.connect  # type: ignore[untyped-decorator]
def record_run(task_id: str, task: Task, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    queue = queue_of(task)
    series(CELERY_TASKS, queue, task.name, (state or "unknown").lower()).inc()
    if started is not None:
        series(CELERY_TASK_DURATION, queue, task.name).observe(time.perf_counter() - started)


def sample_celery_queues(app: Celery) -> None:
    """Set aiaas_celery_queue_length for every queue the app declares."""
    for name, length in celery_queue_lengths(app).items():
        series(CELERY_QUEUE_LENGTH, name).set(length)


def celery_queue_lengths(app: Celery) -> dict[str, int]:
    """Tasks waiting in each queue the app declares, every priority included."""
    names = sorted(
        {queue.name for queue in settings.CELERY_TASK_QUEUES} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    )
    with app.connection_for_read() as connection:
        client = connection.default_channel.client
        pipe = client.pipeline(transaction=False)
        for name in names:
            for suffix in PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
        lengths = pipe.execute()
    width = len(PRIORITY_SUFFIXES)
    return {name: sum(lengths[index * width : (index + 1) * width]) for index, name in enumerate(names)}


def sample_usage_queue() -> None:
    """Set the usage stream's length and the age of its oldest event."""
    length, lag = usage_queue_state()
    USAGE_STREAM_LENGTH.set(length)
    USAGE_FLUSH_LAG.set(lag)


def usage_queue_state() -> tuple[int, float]:
    """The usage stream's length and the age in seconds of its oldest event (0 when
    none waits): flushed events are deleted from it (billing/usage.py), so the
    first one left waits longest."""
    client = sync_client("queues")
    pipe = client.pipeline(transaction=False)
    pipe.xlen(settings.USAGE_STREAM)
    pipe.xrange(settings.USAGE_STREAM, count=1)
    length, oldest = pipe.execute()
    if not oldest:
        return length, 0.0
    queued_ms = int(oldest[0][0].split(b"-")[0])
    return length, max(0.0, time.time() - queued_ms / 1000)
