"""Writes of the router's per-tenant state: settings, and snapshots of learned outcomes and
kept judgements."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import cast

import redis
from django.db import transaction
from django.utils import timezone

from aiaas.redis_clients import sync_client
from routing.models import KeptJudgements, TenantRouting
from routing.router import outcomes, ranking
from routing.router.config import Tally


def tenant_routing(tenant_id: int) -> TenantRouting:
    """The tenant's router settings, created with the defaults on first use."""
    routing, _ = TenantRouting.objects.select_related("control", "canary").get_or_create(tenant_id=tenant_id)
    return routing


@transaction.atomic
def update_settings(
    tenant_id: int, *, quality_target: Decimal | None = None, exploration_rate: Decimal | None = None
) -> TenantRouting:
    routing = TenantRouting.objects.select_for_update().get(pk=tenant_routing(tenant_id).pk)
    if quality_target is not None:
        routing.quality_target = quality_target
    if exploration_rate is not None:
        routing.exploration_rate = exploration_rate
    routing.full_clean()
    routing.save()
    return routing


def snapshot_outcomes() -> int:
    """Copy every tenant's learned outcomes, and its kept judgements that grew since the
    last copy, from Redis to PostgreSQL; the number of tenants copied."""
    copied = 0
    client = sync_client("gateway")
    for key in client.scan_iter(match=outcomes.outcomes_key_pattern(), count=500):
        tenant_id = int(key.decode().rsplit(":", 1)[1])
        learned = outcomes.parse_outcomes(client.hgetall(key))
        snapshot = {field: list(tally) for field, tally in learned.items()}
        routing = TenantRouting.objects.filter(tenant_id=tenant_id).only("pk").first()
        if routing is None:
            continue
        TenantRouting.objects.filter(pk=routing.pk).update(
            outcomes_snapshot=snapshot, outcomes_snapshot_at=timezone.now()
        )
        snapshot_judgements(client, routing, learned)
        copied += 1
    return copied


def snapshot_judgements(client: redis.Redis, routing: TenantRouting, learned: Mapping[str, Tally]) -> None:
    """Copy the kept list of each version the tenant's outcomes name ("<version>|..."
    fields) once its judgement count grew: no scan of the keyspace per tenant."""
    copied = dict(KeptJudgements.objects.filter(routing=routing).values_list("version", "judgements"))
    for version in sorted({field.partition("|")[0] for field in learned}):
        counted = ranking.judgements(learned, version)
        if counted == 0 or (version in copied and counted <= copied[version]):
            continue
        entries = b"".join(
            cast("list[bytes]", client.lrange(ranking.judged_key(routing.tenant_id, version), 0, -1))
        )
        if entries:
            KeptJudgements.objects.update_or_create(
                routing=routing,
                version=version,
                defaults={"entries": entries, "judgements": counted, "taken_at": timezone.now()},
            )


def kept_judgements(tenant_id: int) -> dict[str, list[bytes]]:
    """The tenant's copied judgements per router version, as Redis lists them (newest first)."""
    size = ranking.ENTRY_BYTES
    kept = {}
    for version, entries in KeptJudgements.objects.filter(routing__tenant_id=tenant_id).values_list(
        "version", "entries"
    ):
        data = bytes(entries)
        if len(data) % size == 0:  # else copied before the hand features changed: dropped
            kept[version] = [data[start : start + size] for start in range(0, len(data), size)]
    return kept
