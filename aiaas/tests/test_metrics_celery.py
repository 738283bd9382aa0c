"""Celery in the metrics: each task run counted and timed by its signals, and the
queue depths beat's `sample_queues` measures (Celery's queues, the usage queue)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import httpx
import pytest
from celery.signals import worker_ready, worker_shutdown

from aiaas.celery import app, sample_queues
from aiaas.observability import celery as observed_celery
from aiaas.redis_clients import sync_client
from testing.celery import app_queues_restored
from testing.metrics import registry_value

TASK = "observability.sample_queues"


def test_a_task_run_is_counted_and_timed_by_queue_task_and_state() -> None:
    runs = registry_value("aiaas_celery_tasks_total", queue="direct", task=TASK, state="success")
    timed = registry_value("aiaas_celery_task_duration_seconds_count", queue="direct", task=TASK)

    sample_queues.apply().get()

    assert registry_value("aiaas_celery_tasks_total", queue="direct", task=TASK, state="success") == runs + 1
    assert registry_value("aiaas_celery_task_duration_seconds_count", queue="direct", task=TASK) == timed + 1


def test_a_failed_task_is_counted_as_failed(monkeypatch: Any) -> None:
    def broken(app: object) -> None:
        raise ConnectionError("the broker went away")

    monkeypatch.setattr(observed_celery, "sample_celery_queues", broken)
    failed = {"queue": "direct", "task": TASK, "state": "failure"}
    failures = registry_value("aiaas_celery_tasks_total", **failed)

    sample_queues.apply()

    assert registry_value("aiaas_celery_tasks_total", **failed) == failures + 1


def test_the_depth_of_each_celery_queue_is_sampled(settings: Any) -> None:
    queue = f"test-depth-{os.getpid()}-{time.monotonic_ns()}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    with app_queues_restored():
        try:
            for _ in range(3):
                app.send_task(TASK, queue=queue)
            observed_celery.sample_celery_queues(app)
        finally:
            sync_client().delete(queue)

    assert registry_value("aiaas_celery_queue_length", queue=queue) == 3


def test_the_usage_queues_length_and_the_age_of_its_oldest_event_are_sampled(settings: Any) -> None:
    stream = settings.USAGE_STREAM = f"usage:events:test-lag-{os.getpid()}-{time.monotonic_ns()}"
    queued_ms = int(time.time() * 1000) - 10_000
    client = sync_client()
    try:
        client.xadd(stream, {"v": "1"}, id=f"{queued_ms}-0")
        client.xadd(stream, {"v": "1"})
        observed_celery.sample_usage_queue()
        length = registry_value("aiaas_usage_stream_length")
        lag = registry_value("aiaas_usage_flush_lag_seconds")
        client.delete(stream)
        observed_celery.sample_usage_queue()
    finally:
        client.delete(stream)

    assert length == 2
    assert 10 <= lag < 15
    assert registry_value("aiaas_usage_stream_length") == 0
    assert registry_value("aiaas_usage_flush_lag_seconds") == 0


def test_a_worker_serves_its_metrics_on_metrics_listen_until_it_shuts_down(settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.METRICS_LISTEN = f"127.0.0.1:{port}"
    url = f"http://127.0.0.1:{port}/metrics"

    worker_ready.send(sender=None)  # what `celery worker` sends once it consumes
    try:
        response = httpx.get(url, timeout=5)
    finally:
        worker_shutdown.send(sender=None)

    assert response.status_code == 200
    assert "aiaas_celery_tasks_total" in response.text
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)
