"""The interface every analytics engine implements, and the figures it answers with.

The rollup worker hands each engine batches of ledger rows (`LedgerRow`), in
ledger id order, exactly once per row and never concurrently
(analytics/rollups.py). An engine answers `summary` and `timeseries` for one
tenant: every query it runs is filtered by `Query.tenant_id`, the only way in.
The API (analytics/api/) and the dashboard (analytics/web/) read through
`analytics.backends.get_backend()` only, so PostgreSQL and ClickHouse answer
the same questions the same way (analytics/tests compare them on one data
set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from analytics.sketch import Histogram

Granularity = Literal["hour", "day"]
GroupBy = Literal["model", "key", "tier", "status"]
# A request's status class: 2xx served, 4xx refused (limits, budget, bad input), 5xx failed.
StatusClass = Literal["2xx", "4xx", "5xx"]


def status_class(status: int) -> StatusClass:
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return "2xx"


@dataclass(frozen=True)
class LedgerRow:
    """What analytics reads of one usage ledger row (billing.UsageEvent)."""

    id: int
    tenant_id: int
    created_at: datetime
    model: str
    api_key_id: int | None
    tier: int | None
    status: int
    error_type: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: int
    ttft_ms: int | None
    estimated: bool


@dataclass(frozen=True)
class Query:
    tenant_id: int
    start: datetime  # inclusive
    end: datetime  # exclusive
    granularity: Granularity = "hour"
    group_by: GroupBy | None = None
    models: tuple[str, ...] = ()
    api_key_ids: tuple[int, ...] = ()
    tiers: tuple[int, ...] = ()
    statuses: tuple[StatusClass, ...] = ()


@dataclass
class Figures:
    """The KPIs of a set of requests: one summary, or one point of a timeseries."""

    requests: int = 0
    succeeded: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated: int = 0  # requests billed on an estimate (the client hung up mid-stream)
    errors: dict[str, int] = field(default_factory=dict)  # error type -> requests
    tiers: dict[int, int] = field(default_factory=dict)  # tier -> requests
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)

    @property
    def success_rate(self) -> float | None:
        return None if self.requests == 0 else self.succeeded / self.requests


@dataclass(frozen=True)
class Point:
    t: datetime  # the bucket's start
    group: str | None  # the group_by value (a model id, key id, tier or status class)
    figures: Figures


@dataclass(frozen=True)
class Progress:
    """How far the read model is behind the ledger."""

    watermark_id: int  # the last ledger id applied
    pending_rows: int  # ledger rows not applied yet
    lag_seconds: float  # age of the oldest ledger row not applied yet; 0 when none


class AnalyticsBackend(Protocol):
    name: str

    def apply(self, rows: Sequence[LedgerRow]) -> None:
        """Add the rows to the read model. Called with rows after the last applied
        id only; must be atomic with recording the new watermark, or idempotent."""
        ...

    def summary(self, query: Query) -> Figures: ...

    def timeseries(self, query: Query) -> list[Point]:
        """One point per bucket (and group) that has requests, in time order."""
        ...

    def reset(self, tenant_id: int | None = None) -> None:
        """Forget everything, or one tenant's figures (the rebuild command starts here).
        PostgreSQL: inside the caller's transaction."""
        ...


def figures_json(figures: Figures) -> dict[str, object]:
    """The figures as the API, the CSV export and the dashboard's charts show them.

    Money is a string with six decimals (as /api/v1/usage shows it); rates are
    0-1 floats or null without requests; percentiles are milliseconds within
    analytics.sketch.RELATIVE_ERROR, null without requests (or, for TTFT,
    without streamed requests).
    """
    requests = figures.requests
    failed = requests - figures.succeeded
    return {
        "requests": requests,
        "succeeded": figures.succeeded,
        "success_rate": figures.success_rate,
        "error_rate": None if requests == 0 else failed / requests,
        "errors": dict(sorted(figures.errors.items())),
        "latency_ms": figures.latency.percentiles(),
        "ttft_ms": figures.ttft.percentiles(),
        "prompt_tokens": figures.prompt_tokens,
        "completion_tokens": figures.completion_tokens,
        "total_tokens": figures.prompt_tokens + figures.completion_tokens,
        "cost_usd": f"{figures.cost_usd:.6f}",
        "estimated_requests": figures.estimated,
        "tiers": {str(tier): count for tier, count in sorted(figures.tiers.items())},
    }
