"""The origins any tenant allows, which a CORS preflight is checked against
(aiaas/cors.py decides; tenants/middleware.py and gateway/transports/cors.py ask).

That set is read with one query and kept per process for
CORS_ORIGINS_CACHE_SECONDS: a preflight carries no key, so without the cache
anyone could make each one cost a query. An origin a tenant adds is answered
within that time; one it removes may still pass a preflight that long, which
grants nothing: the answer itself carries Access-Control-Allow-Origin only for
the origins of the key's tenant, read with the key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from tenants.models import Tenant


def origins_allowed_by_any_tenant() -> frozenset[str]:
    """Every origin an active, verified tenant lists (one query)."""
    lists = Tenant.objects.filter(is_active=True, email_verified_at__isnull=False).values_list(
        "cors_allowed_origins", flat=True
    )
    return frozenset(origin for origins in lists for origin in origins)


@dataclass
class Loaded:
    origins: frozenset[str]
    at: float


class KnownOrigins:
    """`origins_allowed_by_any_tenant`, cached for CORS_ORIGINS_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._loaded: Loaded | None = None

    def fresh(self) -> frozenset[str] | None:
        loaded = self._loaded
        if loaded is None or time.monotonic() - loaded.at >= settings.CORS_ORIGINS_CACHE_SECONDS:
            return None
        return loaded.origins

    def get(self) -> frozenset[str]:
        origins = self.fresh()
        if origins is None:
            origins = origins_allowed_by_any_tenant()
            self._loaded = Loaded(origins, time.monotonic())
        return origins

    async def aget(self) -> frozenset[str]:
        origins = self.fresh()
        return origins if origins is not None else await sync_to_async(self.get, thread_sensitive=False)()

    def forget(self) -> None:
        self._loaded = None


known_origins = KnownOrigins()
