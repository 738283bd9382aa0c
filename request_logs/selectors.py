"""Reading a tenant's request logs with what the usage ledger knows of each request.

A `RequestLog` row (the tenant's schema) holds the prompt and the answer; the
ledger row of the same request id (billing.UsageEvent, public schema, the
tenant's only) holds its tier, latency, tokens and cost. Both are read in one
query: the tenant's schema is first on the search path and public after it.
A request refused before it reached the ledger has no figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from django.db.models import F, OuterRef, QuerySet, Subquery

from billing.models import UsageEvent
from request_logs.models import RequestLog
from tenants.models import Tenant

LEDGER_FIGURES = ("tier", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd")


class Outcome(StrEnum):
    SERVED = "served"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def statuses(self) -> tuple[int, int]:
        """[low, high) of the HTTP statuses this outcome covers."""
        return {Outcome.SERVED: (200, 400), Outcome.REJECTED: (400, 500), Outcome.FAILED: (500, 600)}[self]


@dataclass(frozen=True)
class LogFilters:
    api_key_id: int | None = None
    model: str = ""
    tier: int | None = None
    outcome: Outcome | None = None
    first_day: date | None = None  # UTC, included
    last_day: date | None = None  # UTC, included
    request_id: str = ""


def with_ledger_figures(logs: QuerySet[RequestLog], tenant: Tenant) -> QuerySet[RequestLog]:
    ledger = UsageEvent.objects.filter(tenant_id=tenant.pk, request_id=OuterRef("request_id"))
    return logs.annotate(**{name: Subquery(ledger.values(name)[:1]) for name in LEDGER_FIGURES})


def request_logs_of(tenant: Tenant, filters: LogFilters) -> QuerySet[RequestLog]:
    """The tenant's logged requests matching `filters`, newest first, with ledger figures.
    Call inside the tenant's schema (a tenant page is)."""
    logs = with_ledger_figures(RequestLog.objects.all(), tenant)
    if filters.api_key_id is not None:
        logs = logs.filter(api_key_id=filters.api_key_id)
    if filters.model:
        logs = logs.filter(model=filters.model)
    if filters.tier is not None:
        served = UsageEvent.objects.filter(tenant_id=tenant.pk, tier=filters.tier)
        logs = logs.filter(request_id__in=served.values("request_id"))
    if filters.outcome is not None:
        low, high = filters.outcome.statuses
        logs = logs.filter(status__gte=low, status__lt=high)
    if filters.first_day is not None:
        logs = logs.filter(created_at__gte=datetime.combine(filters.first_day, time.min, tzinfo=UTC))
    if filters.last_day is not None:
        end = datetime.combine(filters.last_day + timedelta(days=1), time.min, tzinfo=UTC)
        logs = logs.filter(created_at__lt=end)
    if filters.request_id:
        logs = logs.filter(request_id=filters.request_id)
    return logs.order_by(F("created_at").desc(), F("id").desc())


def request_log_of(tenant: Tenant, pk: int) -> RequestLog | None:
    return with_ledger_figures(RequestLog.objects.filter(pk=pk), tenant).first()


def logged_models() -> list[str]:
    """The models the tenant's logs name, for the filter (inside the tenant's schema)."""
    return list(
        RequestLog.objects.exclude(model="").order_by("model").values_list("model", flat=True).distinct()
    )
