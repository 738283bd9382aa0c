"""An immutable in-memory snapshot of the model registry for the gateway.

The gateway never queries the registry tables on a request: it reads a
snapshot that is reloaded in the background of a request at most every
CATALOG_TTL_SECONDS (single flight), so an admin edit takes effect within
that time in every process. A model promoted or rolled back in the signed
registry (registry/, which writes these tables) is announced on the control
bus: every snapshot of every process is marked stale at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from asgiref.sync import sync_to_async

from aiaas import control_bus
from routing.models import (
    ModelAlias,
    Provider,
    ProviderKind,
    ProviderModel,
    credential_env_allowed,
    credential_file_allowed,
)

logger = logging.getLogger(__name__)

CATALOG_TTL_SECONDS = 10.0
MILLION = Decimal(1_000_000)
REGISTRY_TOPIC = "registry"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    slug: str
    name: str
    base_url: str
    auth_style: str
    credential: str | None
    default_query: dict[str, str]
    connect_timeout: float
    first_token_timeout: float
    total_timeout: float
    max_concurrent_calls: int
    is_simulated: bool
    kind: str = ProviderKind.OPENAI

    @property
    def is_local(self) -> bool:
        """Served inside the gateway process (gateway/providers/local.py), not over HTTP."""
        return self.kind == ProviderKind.LOCAL


@dataclass(frozen=True, slots=True)
class ModelSpec:
    model_id: str
    provider: ProviderSpec
    upstream_model: str
    tier: int
    context_window: int
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    supports_chat: bool
    supports_json_mode: bool
    supports_embeddings: bool

    @property
    def breaker_key(self) -> str:
        return f"{self.provider.slug}:{self.model_id}"

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (
            self.input_price_per_million * prompt_tokens + self.output_price_per_million * completion_tokens
        ) / MILLION


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelSpec]
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> ModelSpec | None:
        """The enabled model named `name` directly or through an alias."""
        return self.models.get(self.aliases.get(name, name))

    @cached_property
    def by_cost(self) -> list[ModelSpec]:
        """Every model, cheapest tier first, then cheapest price (sorted once per snapshot)."""
        return sorted(
            self.models.values(),
            key=lambda m: (m.tier, m.input_price_per_million + m.output_price_per_million, m.model_id),
        )


def read_credential(provider: Provider) -> str | None:
    """From the named environment variable, else the named file; never from the
    database, and only where settings allow (Provider.clean): a row that names
    another variable (SECRET_KEY, DATABASE_URL) or file gets no credential."""
    if provider.credential_env and not credential_env_allowed(provider.credential_env):
        logger.error("provider %s names a credential variable outside the allowed prefixes", provider.slug)
    elif provider.credential_env and os.environ.get(provider.credential_env):
        return os.environ[provider.credential_env]
    if provider.credential_file and not credential_file_allowed(provider.credential_file):
        logger.error("provider %s names a credential file outside the allowed folders", provider.slug)
    elif provider.credential_file:
        try:
            return Path(provider.credential_file).read_text().strip() or None
        except OSError:
            return None
    return None


def provider_spec(provider: Provider) -> ProviderSpec:
    return ProviderSpec(
        slug=provider.slug,
        name=provider.name,
        base_url=provider.base_url.rstrip("/"),
        auth_style=provider.auth_style,
        credential=read_credential(provider),
        default_query={str(k): str(v) for k, v in (provider.default_query or {}).items()},
        connect_timeout=provider.connect_timeout_seconds,
        first_token_timeout=provider.first_token_timeout_seconds,
        total_timeout=provider.total_timeout_seconds,
        max_concurrent_calls=provider.max_concurrent_calls,
        is_simulated=provider.is_simulated,
        kind=provider.kind,
    )


def load_catalog() -> Catalog:
    """Read the enabled providers, models and aliases (public schema)."""
    providers = {p.pk: provider_spec(p) for p in Provider.objects.filter(is_enabled=True)}
    models = {
        m.model_id: ModelSpec(
            model_id=m.model_id,
            provider=providers[m.provider_id],
            upstream_model=m.upstream_model,
            tier=m.tier,
            context_window=m.context_window,
            input_price_per_million=m.input_price_per_million,
            output_price_per_million=m.output_price_per_million,
            supports_chat=m.supports_chat,
            supports_json_mode=m.supports_json_mode,
            supports_embeddings=m.supports_embeddings,
        )
        for m in ProviderModel.objects.filter(is_enabled=True, provider_id__in=providers)
    }
    aliases = {
        a.alias: a.target.model_id
        for a in ModelAlias.objects.select_related("target")
        if a.target.model_id in models
    }
    return Catalog(models=models, aliases=aliases)


class CatalogCache:
    """The process's catalog snapshot, refreshed single-flight when stale."""

    def __init__(self, ttl_seconds: float = CATALOG_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._catalog: Catalog | None = None
        # Not 0: time.monotonic() counts from boot, so "0" is fresh on a host up less than a TTL.
        self._loaded_at = -math.inf
        self._lock = asyncio.Lock()
        listen(self)

    async def get(self) -> Catalog:
        if self._catalog is not None and time.monotonic() - self._loaded_at < self.ttl_seconds:
            return self._catalog
        async with self._lock:
            if self._catalog is None or time.monotonic() - self._loaded_at >= self.ttl_seconds:
                self._catalog = await sync_to_async(load_catalog, thread_sensitive=False)()
                self._loaded_at = time.monotonic()
        return self._catalog

    def invalidate(self) -> None:
        self._loaded_at = -math.inf


_caches: weakref.WeakSet[CatalogCache] = weakref.WeakSet()
_listening = False


def listen(cache: CatalogCache) -> None:
    global _listening
    if not _listening:
        _listening = True
        control_bus.on(REGISTRY_TOPIC, invalidate_all)
    _caches.add(cache)


def invalidate_all(payload: str) -> None:
    """Mark every snapshot of this process stale when a model entry changed (or the
    bus reconnected, when anything may have)."""
    if not payload or ":model:" in payload:
        for cache in list(_caches):
            cache.invalidate()
