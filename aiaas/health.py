"""Liveness and readiness. /livez (and its older name /healthz) says the process
answers and touches nothing; /readyz checks each dependency: PostgreSQL, Redis in
each role it is configured for (pools, cache, channel layer) and the Celery broker.
Anonymous probes learn only "ok" or "failed"; the error text, which may name
hosts, goes to the metrics token's bearer and to staff (aiaas/middleware.py)."""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from kombu.exceptions import KombuError

from aiaas.celery import app
from aiaas.redis_clients import PoolSettings, new_sync_client

CHECK_TIMEOUT_SECONDS = 2
Check = Callable[[], str | None]


def check_postgres() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        return describe(error)
    return None


def redis_check(url: str) -> Check:
    def check() -> str | None:
        try:
            timeout = CHECK_TIMEOUT_SECONDS
            config = PoolSettings(max_connections=1, socket_timeout=timeout, socket_connect_timeout=timeout)
            with new_sync_client(url, config) as client:
                client.ping()
        except (redis.RedisError, OSError) as error:
            return describe(error)
        return None

    return check


def check_celery_broker() -> str | None:
    try:
        with app.connection_for_read(connect_timeout=CHECK_TIMEOUT_SECONDS) as broker:
            broker.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
    except (OSError, KombuError, redis.RedisError) as error:
        return describe(error)
    return None


def describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".strip()


def checks() -> dict[str, Check]:
    """Each dependency's check, by name; a Redis role configured apart is checked apart."""
    return {
        "postgres": check_postgres,
        "redis": redis_check(settings.REDIS_URL),
        "redis_limits": redis_check(settings.REDIS_LIMITS_URL),
        "redis_cache": redis_check(settings.CACHES["default"]["LOCATION"]),
        "redis_channels": redis_check(settings.REDIS_STREAMS_URL),
        "celery_broker": check_celery_broker,
    }


def readiness() -> dict[str, str | None]:
    """Each dependency's failure (its error text), or None when it answers."""
    return {name: check() for name, check in checks().items()}
