"""The signals the degrade evaluator reads, each from where it is kept:

- gateway_overhead_p95_ms, upstream_p95_ms: the gateway's own time and its time
  waiting on providers, p95 over DEGRADE_SIGNAL_WINDOW_SECONDS (capacity/latency.py);
- provider_error_rate: failed over all calls in the circuit breakers' rolling
  windows in Redis (gateway/resilience/breaker_scripts.py), every provider model;
- celery_queue_depth: the deepest Celery queue (aiaas/observability/celery.py);
- redis_memory_ratio: used_memory over maxmemory of the limits server, the gateway's
  (0 when Redis has no maxmemory);
- usage_flush_lag_seconds: the age of the oldest usage event not yet in the ledger.

A signal that cannot be read is None, and the evaluator ignores it; so is a
percentile or an error rate over fewer than DEGRADE_SIGNAL_MIN_SAMPLES requests
or calls: a cold start's first request or one injected fault says nothing about load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import redis
from django.conf import settings
from kombu.exceptions import OperationalError

from aiaas.celery import app
from aiaas.observability.celery import celery_queue_lengths, usage_queue_state
from aiaas.redis_clients import sync_client
from capacity.latency import Kind, percentile_ms

logger = logging.getLogger(__name__)

Signals = dict[str, float | None]
BREAKER_WINDOWS = "breaker:*:window"


def gateway_overhead_p95_ms(client: redis.Redis, now: float | None = None) -> float | None:
    return window_p95_ms(client, Kind.OVERHEAD, now)


def upstream_p95_ms(client: redis.Redis, now: float | None = None) -> float | None:
    return window_p95_ms(client, Kind.UPSTREAM, now)


def window_p95_ms(client: redis.Redis, kind: Kind, now: float | None) -> float | None:
    return percentile_ms(
        client,
        kind,
        settings.DEGRADE_SIGNAL_WINDOW_SECONDS,
        now=now,
        min_samples=settings.DEGRADE_SIGNAL_MIN_SAMPLES,
    )


def provider_error_rate(client: redis.Redis) -> float | None:
    calls = failures = 0
    for key in client.scan_iter(match=BREAKER_WINDOWS, count=500):
        for name, count in client.hgetall(key).items():
            if cast(bytes, name).startswith(b"c"):  # clients speak bytes (aiaas/redis_clients.py)
                calls += int(count)
            else:
                failures += int(count)
    return error_rate(calls, failures)


def error_rate(calls: int, failures: int) -> float | None:
    return failures / calls if calls >= max(settings.DEGRADE_SIGNAL_MIN_SAMPLES, 1) else None


def celery_queue_depth(client: redis.Redis) -> float | None:
    return float(max(celery_queue_lengths(app).values(), default=0))


def redis_memory_ratio(client: redis.Redis) -> float | None:
    memory = client.info("memory")
    maximum = int(memory.get("maxmemory", 0))
    return int(memory["used_memory"]) / maximum if maximum else 0.0


def usage_flush_lag_seconds(client: redis.Redis) -> float | None:
    return usage_queue_state()[1]


READERS: dict[str, Callable[[redis.Redis], float | None]] = {
    "gateway_overhead_p95_ms": gateway_overhead_p95_ms,
    "upstream_p95_ms": upstream_p95_ms,
    "provider_error_rate": provider_error_rate,
    "celery_queue_depth": celery_queue_depth,
    "redis_memory_ratio": redis_memory_ratio,
    "usage_flush_lag_seconds": usage_flush_lag_seconds,
}


def measure() -> Signals:
    """Every signal now; one that fails to read is None (and logged). The gateway
    keeps its latencies and breakers on the limits server (REDIS_LIMITS_URL)."""
    client = sync_client("gateway")
    measured: Signals = {}
    for name, reader in READERS.items():
        try:
            measured[name] = reader(client)
        except (redis.RedisError, OperationalError, OSError):
            logger.warning("the signal %s was not read", name, exc_info=True)
            measured[name] = None
    return measured
