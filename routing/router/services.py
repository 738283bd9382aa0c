"""Writes of the router's per-tenant state: settings and snapshots of learned outcomes."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from aiaas.redis_clients import sync_client
from routing.models import TenantRouting
from routing.router import outcomes


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
    """Copy every tenant's learned outcomes from Redis to PostgreSQL; the number copied."""
    copied = 0
    client = sync_client("gateway")
    for key in client.scan_iter(match=outcomes.outcomes_key_pattern(), count=500):
        tenant_id = int(key.decode().rsplit(":", 1)[1])
        snapshot = {
            field: list(tally) for field, tally in outcomes.parse_outcomes(client.hgetall(key)).items()
        }
        copied += TenantRouting.objects.filter(tenant_id=tenant_id).update(
            outcomes_snapshot=snapshot, outcomes_snapshot_at=timezone.now()
        )
    return copied
