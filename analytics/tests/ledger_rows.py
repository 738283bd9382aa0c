"""Generated ledger rows for the analytics tests: several tenants, models, keys,
tiers and outcomes over a few days, with latencies spread over decades."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from analytics.backends.base import Figures, LedgerRow, status_class
from analytics.sketch import Histogram

MODELS = ("small-model", "large-model", "embed-model")
# 500 has no error type: a failure the ledger holds without one.
ERRORS = {429: "rate_limit_exceeded", 402: "insufficient_quota", 502: "provider_error", 504: "timeout"}


def generated_rows(tenant_ids: Iterable[int], start: datetime, count: int, seed: int = 16) -> list[LedgerRow]:
    """`count` rows over three days from `start`, in id order."""
    chance = random.Random(seed)
    tenants = list(tenant_ids)
    rows = []
    for index in range(count):
        status = chance.choice((200, 200, 200, 200, 200, 200, 429, 402, 500, 502, 504))
        streamed = chance.random() < 0.6
        served = status < 400 or status >= 500
        rows.append(
            LedgerRow(
                id=index + 1,
                tenant_id=chance.choice(tenants),
                created_at=start + timedelta(seconds=chance.randrange(3 * 24 * 3600), microseconds=index),
                model=chance.choice(MODELS) if served else "",
                api_key_id=chance.choice((11, 12, 13, None)),
                tier=chance.choice((1, 2, 3)) if served else None,
                status=status,
                error_type=ERRORS.get(status, ""),
                prompt_tokens=chance.randrange(2_000) if served else 0,
                completion_tokens=chance.randrange(800) if status < 400 else 0,
                cost_usd=Decimal(chance.randrange(10**6)) / Decimal(10**8) if served else Decimal(0),
                latency_ms=int(chance.lognormvariate(6, 1.5)) if served else chance.randrange(3),
                ttft_ms=int(chance.lognormvariate(5, 1)) if streamed and status < 400 else None,
                estimated=chance.random() < 0.05,
            )
        )
    return rows


def expected_figures(rows: Iterable[LedgerRow]) -> Figures:
    """The figures of the rows, counted one by one: what every backend must answer."""
    figures = Figures()
    for row in rows:
        figures.requests += 1
        figures.prompt_tokens += row.prompt_tokens
        figures.completion_tokens += row.completion_tokens
        figures.cost_usd += row.cost_usd
        figures.estimated += int(row.estimated)
        figures.succeeded += status_class(row.status) == "2xx"
        if row.error_type:
            figures.errors[row.error_type] = figures.errors.get(row.error_type, 0) + 1
        if row.tier is not None:
            figures.tiers[row.tier] = figures.tiers.get(row.tier, 0) + 1
        figures.latency.merge(Histogram.of([row.latency_ms]))
        if row.ttft_ms is not None:
            figures.ttft.merge(Histogram.of([row.ttft_ms]))
    return figures
