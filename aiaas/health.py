"""Liveness and readiness: /healthz says the process is up, /readyz that
PostgreSQL and Redis answer."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import DatabaseError, connection

CHECK_TIMEOUT_SECONDS = 2


def check_postgres() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        return f"{type(error).__name__}: {error}".strip()
    return None


def check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=CHECK_TIMEOUT_SECONDS,
            socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        )
        with client:
            client.ping()
    except (redis.RedisError, OSError) as error:
        return f"{type(error).__name__}: {error}".strip()
    return None


def readiness() -> dict[str, str]:
    """Each dependency's state: "ok" or the error that made it fail."""
    return {name: check() or "ok" for name, check in (("postgres", check_postgres), ("redis", check_redis))}
