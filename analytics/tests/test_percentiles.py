"""Percentiles read from the rollups are within the sketch's 1% of the exact
percentiles (`percentile_disc`) of the raw ledger, whatever the distribution."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from analytics.backends import get_backend
from analytics.backends.base import Query, status_class
from analytics.sketch import PERCENTILES, RELATIVE_ERROR, Histogram
from analytics.tests.conftest import Ledger, apply_all
from billing.usage import UsageRecord
from testing.tenants import TenantFixture

DISTRIBUTIONS: dict[str, Callable[[random.Random], int]] = {
    "lognormal": lambda rng: int(rng.lognormvariate(6, 1)),
    "uniform": lambda rng: rng.randint(1, 30_000),
    "bimodal": lambda rng: int(rng.gauss(40, 5)) if rng.random() < 0.7 else int(rng.gauss(4_000, 600)),
    "pareto": lambda rng: min(int(10 * rng.paretovariate(1.2)), 3_600_000),
    "with zeros": lambda rng: 0 if rng.random() < 0.3 else rng.randint(1, 50),
}


def exact(tenant: TenantFixture, column: str, start: datetime, end: datetime) -> dict[str, float | None]:
    fractions = ", ".join(f"percentile_disc({q}) WITHIN GROUP (ORDER BY {column})" for _, q in PERCENTILES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {fractions} FROM billing_usageevent WHERE tenant_id = %s"  # noqa: S608 - constants
            " AND created_at >= %s AND created_at < %s",
            [tenant.tenant.pk, start, end],
        )
        row = cursor.fetchone()
    return {name: value for (name, _), value in zip(PERCENTILES, row, strict=True)}


def assert_within_bound(approximate: dict[str, float | None], exact: dict[str, float | None]) -> None:
    for name, value in exact.items():
        assert value is not None
        found = approximate[name]
        assert found is not None
        assert abs(found - value) <= RELATIVE_ERROR * value + 0.01, (name, found, value)  # 0.01: rounding


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_rollup_percentiles_are_within_one_percent_of_the_ledger(
    distribution: str, tenant: TenantFixture, ledger: Ledger
) -> None:
    rng = random.Random(distribution)
    draw = DISTRIBUTIONS[distribution]
    # Three days and some, over many rollup rows (hours, models, statuses).
    records = [
        ledger.record(
            tenant,
            ledger.start + timedelta(minutes=rng.randrange(80 * 60)),
            latency_ms=max(0, draw(rng)),
            ttft_ms=None if rng.random() < 0.2 else max(0, draw(rng) // 3),
            model=rng.choice(["sim-small", "sim-large"]),
            status=rng.choice([200, 200, 200, 429, 502]),
        )
        for _ in range(4_000)
    ]
    ledger.add(records)
    apply_all()
    start, end = ledger.start + timedelta(hours=5), ledger.start + timedelta(hours=77)

    figures = get_backend().summary(Query(tenant.tenant.pk, start, end))

    assert figures.requests == sum(start <= record.created_at < end for record in records)
    assert_within_bound(figures.latency.percentiles(), exact(tenant, "latency_ms", start, end))
    assert_within_bound(figures.ttft.percentiles(), exact(tenant, "ttft_ms", start, end))


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


QUERIES: dict[str, tuple[dict[str, Any], Callable[[UsageRecord], str | None] | None]] = {
    # (query fields, the group a record falls in), a record passing the filters
    "all": ({}, None),
    "by status": ({"group_by": "status"}, lambda record: status_class(record.status)),
    "by tier": ({"group_by": "tier"}, lambda record: str(record.tier)),
    "by model": ({"group_by": "model"}, lambda record: record.model),
    "tier filter": ({"tiers": (2,)}, None),
    "status filter": ({"statuses": ("5xx",)}, None),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_each_points_histogram_is_exactly_the_sketch_of_its_requests(
    name: str, tenant: TenantFixture, ledger: Ledger
) -> None:
    """Whichever rows a query merges histograms from (the histogram-only rows, or the
    rows of each tier and status when it filters or groups by them), a point's
    histogram is the sketch of exactly its requests' latencies."""
    rng = random.Random(name)
    records = [
        ledger.record(
            tenant,
            ledger.start + timedelta(minutes=rng.randrange(4 * 24 * 60)),
            latency_ms=int(rng.lognormvariate(6, 1)),
            model=rng.choice(["sim-small", "sim-large"]),
            tier=rng.choice([1, 2]),
            status=rng.choice([200, 200, 429, 502]),
            error_type="",
        )
        for _ in range(1_500)
    ]
    ledger.add(records)
    apply_all()
    fields, group_of = QUERIES[name]
    start, end = ledger.start + timedelta(hours=7), ledger.start + timedelta(days=3, hours=5)
    query = Query(tenant.tenant.pk, start, end, granularity="day", **fields)

    points = get_backend().timeseries(query)

    expected: dict[tuple[datetime, str | None], list[int]] = {}
    for record in records:
        if not start <= record.created_at < end:
            continue
        if query.tiers and record.tier not in query.tiers:
            continue
        if query.statuses and status_class(record.status) not in query.statuses:
            continue
        group = group_of(record) if group_of else None
        expected.setdefault((day_of(record.created_at), group), []).append(record.latency_ms)
    assert {(point.t, point.group): point.figures.latency for point in points} == {
        key: Histogram.of(latencies) for key, latencies in expected.items()
    }
