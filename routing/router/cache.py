"""Each gateway process's copy of tenants' router settings and learned outcomes.

A routing decision reads only memory. A tenant's entry is loaded on its first
`auto` request in the process (one database read and one Redis read), then
served as is and refreshed in the background once it is older than
REFRESH_SECONDS, so settings, a canary's rollback and new outcomes reach every
process within that time without a request ever waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from routing.models import CanaryState, RouterVersion, TenantRouting
from routing.router.adaptation import adapted_thresholds
from routing.router.config import DEFAULT_VERSION, Tally, TenantRouterConfig, VersionSpec
from routing.router.outcomes import JUDGED_TTL_SECONDS, outcomes_key, parse_outcomes, tally_mapping
from routing.router.ranking import TenantRanking, judged_key, judgements, needs_fitting, tenant_ranking
from routing.router.services import kept_judgements

REFRESH_SECONDS = 5.0
logger = logging.getLogger(__name__)


def version_spec(version: RouterVersion | None) -> VersionSpec:
    if version is None:
        return DEFAULT_VERSION
    return VersionSpec(version.name, version.artifact, version.threshold_shift)


def load_settings(tenant_id: int) -> tuple[TenantRouterConfig, dict[str, list[float]]]:
    """The tenant's settings and its last snapshot of learned outcomes."""
    routing = TenantRouting.objects.select_related("control", "canary").filter(tenant_id=tenant_id).first()
    if routing is None:
        return TenantRouterConfig(tenant_id), {}
    running = routing.canary is not None and routing.canary_state == CanaryState.RUNNING
    config = TenantRouterConfig(
        tenant_id=tenant_id,
        quality_target=float(routing.quality_target),
        exploration_rate=float(routing.exploration_rate),
        control=version_spec(routing.control),
        canary=version_spec(routing.canary) if running else None,
        canary_share=float(routing.canary_share) if running else 0.0,
    )
    return config, routing.outcomes_snapshot


class RouterConfigCache:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.entries: dict[int, tuple[float, TenantRouterConfig]] = {}
        self.refreshing: dict[int, asyncio.Task[None]] = {}

    async def get(self, tenant_id: int) -> TenantRouterConfig:
        entry = self.entries.get(tenant_id)
        if entry is None:
            await self.refresh(tenant_id)
            return self.entries[tenant_id][1]
        loaded_at, config = entry
        if time.monotonic() - loaded_at > REFRESH_SECONDS and tenant_id not in self.refreshing:
            task = asyncio.create_task(self.refresh_quietly(tenant_id))
            self.refreshing[tenant_id] = task
            task.add_done_callback(lambda _: self.refreshing.pop(tenant_id, None))
        return config

    async def refresh(self, tenant_id: int) -> None:
        (settings, snapshot), raw = await asyncio.gather(
            sync_to_async(load_settings)(tenant_id), self.redis.hgetall(outcomes_key(tenant_id))
        )
        learned = parse_outcomes(raw)
        if not learned and snapshot:
            # Redis lost them (or never had them here): start again from PostgreSQL's copy,
            # the kept judgements too.
            learned = {field: Tally(*map(float, values)) for field, values in snapshot.items()}
            await self.redis.hset(outcomes_key(tenant_id), mapping=tally_mapping(learned))
            await self.restore_judgements(tenant_id)
        config = replace(settings, outcomes=learned)
        config = replace(config, thresholds=adapted_thresholds(config))
        previous = self.entries[tenant_id][1].rankings if tenant_id in self.entries else {}
        config = replace(config, rankings=await self.rankings(config, previous))
        self.entries[tenant_id] = (time.monotonic(), config)

    async def restore_judgements(self, tenant_id: int) -> None:
        """Put the copied judgements back in each version's list Redis no longer has."""
        for version, entries in (await sync_to_async(kept_judgements)(tenant_id)).items():
            key = judged_key(tenant_id, version)
            if entries and not await self.redis.exists(key):
                pipe = self.redis.pipeline(transaction=True)
                pipe.rpush(key, *entries)
                pipe.expire(key, JUDGED_TTL_SECONDS)
                await pipe.execute()

    async def rankings(
        self, config: TenantRouterConfig, previous: Mapping[str, TenantRanking]
    ) -> dict[str, TenantRanking]:
        """The ranking of each version that has a re-solved threshold: the previous fit
        until enough new judgements arrive (ranking.needs_fitting), else fitted again
        from the tenant's kept judgements."""
        target, outcomes = config.quality_target, config.outcomes
        stale = [v for v in config.thresholds if needs_fitting(previous.get(v), outcomes, v, target)]
        pipe = self.redis.pipeline(transaction=False)
        for version in stale:
            pipe.lrange(judged_key(config.tenant_id, version), 0, -1)
        lists = await pipe.execute() if stale else []
        fitted = {
            version: tenant_ranking(entries, target, judgements(outcomes, version))
            for version, entries in zip(stale, lists, strict=True)
        }
        kept = {v: previous[v] for v in config.thresholds if v not in stale}
        return kept | {version: ranked for version, ranked in fitted.items() if ranked is not None}

    async def refresh_quietly(self, tenant_id: int) -> None:
        """A background refresh: on failure the current entry serves until the next try."""
        try:
            await self.refresh(tenant_id)
        except Exception:
            logger.exception("router settings of tenant %s were not refreshed", tenant_id)
            self.entries[tenant_id] = (time.monotonic(), self.entries[tenant_id][1])
