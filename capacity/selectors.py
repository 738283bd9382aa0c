"""Reads for the capacity view and the command: the level, its history, and load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, F, Sum
from django.utils import timezone

from billing.models import UsageEvent
from capacity.models import DegradeChange, DegradeState

TOP_TENANTS = 10
LOAD_WINDOW = timedelta(minutes=1)


def degrade_state() -> DegradeState:
    """The stored level (an unsaved `normal` under automatic control before the first change)."""
    return DegradeState.objects.filter(pk=DegradeState.SINGLETON_ID).first() or DegradeState(
        pk=DegradeState.SINGLETON_ID
    )


def recent_changes(limit: int = 20) -> list[DegradeChange]:
    return list(DegradeChange.objects.all()[:limit])


@dataclass(frozen=True, slots=True)
class TenantLoad:
    tenant_id: int
    slug: str
    requests: int
    tokens: int


def top_tenants_by_load(limit: int = TOP_TENANTS) -> list[TenantLoad]:
    """The tenants with the most /v1 requests in the ledger over the last minute (the
    ledger trails the gateway by its flush lag, a few seconds when healthy)."""
    rows = (
        UsageEvent.objects.filter(created_at__gte=timezone.now() - LOAD_WINDOW)
        .values("tenant_id", "tenant__slug")
        .annotate(requests=Count("id"), tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
        .order_by("-requests", "tenant_id")[:limit]
    )
    return [
        TenantLoad(row["tenant_id"], row["tenant__slug"], row["requests"], int(row["tokens"] or 0))
        for row in rows
    ]
