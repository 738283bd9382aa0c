"""The analytics read model's engines, behind one interface (analytics/backends/base.py):
PostgreSQL rollups by default, ClickHouse with `ANALYTICS_BACKEND=clickhouse`."""

from __future__ import annotations

import importlib
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from analytics.backends.base import AnalyticsBackend

ENGINES = {
    "postgres": "analytics.backends.postgres.PostgresBackend",
    "clickhouse": "analytics.backends.clickhouse.ClickHouseBackend",
}


def get_backend() -> AnalyticsBackend:
    """The configured engine (settings.ANALYTICS_BACKEND), made once per process;
    an engine's module is imported only when it is the one configured."""
    return backend_named(settings.ANALYTICS_BACKEND)


@cache
def backend_named(name: str) -> AnalyticsBackend:
    try:
        module_name, class_name = ENGINES[name].rsplit(".", 1)
    except KeyError:
        raise ImproperlyConfigured(
            f"ANALYTICS_BACKEND must be one of {sorted(ENGINES)}, not {name!r}"
        ) from None
    backend: AnalyticsBackend = getattr(importlib.import_module(module_name), class_name)()
    return backend
