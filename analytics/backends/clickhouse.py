"""The analytics read model on ClickHouse (`ANALYTICS_BACKEND=clickhouse`, `CLICKHOUSE_URL`).

ClickHouse keeps the ledger rows themselves, one narrow row per request, and
aggregates them per query: at billions of rows it scans a tenant's month in
milliseconds (docs/decisions/0023-clickhouse-analytics.md), so no rollup
tables are maintained beside them. The promises:

- Exactly once: the table is a ReplacingMergeTree keyed by (tenant_id,
  created_at, id) and every read is `FINAL`, so a batch applied twice (a
  worker killed after the insert, before its watermark moved) counts once.
- The same percentiles as PostgreSQL: each row carries the analytics.sketch
  bucket of its latency and TTFT, computed here in Python with `bucket_of`,
  and a query sums bucket counts into the same `Histogram`.
- One tenant per query: every SELECT is built by `select_figures`, whose
  WHERE starts with `tenant_id = {tenant_id}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from analytics.backends.base import Figures, LedgerRow, Point, Query, status_class
from analytics.backends.clickhouse_sessions import ClickHouseSession, session_for, utc_text
from analytics.sketch import Histogram, bucket_of

TABLE = "ledger"
COLUMNS = (
    "tenant_id",
    "created_at",
    "id",
    "model",
    "api_key_id",
    "tier",
    "status_class",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "estimated",
    "latency_bucket",
    "ttft_bucket",
)
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    tenant_id UInt64,
    created_at DateTime64(6, 'UTC'),
    id UInt64,
    model LowCardinality(String),
    api_key_id Nullable(UInt64),
    tier Nullable(UInt16),
    status_class LowCardinality(String),
    error_type LowCardinality(String),
    prompt_tokens UInt32,
    completion_tokens UInt32,
    cost_usd Decimal(18, 8),
    estimated UInt8,
    latency_bucket Int16,
    ttft_bucket Nullable(Int16)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant_id, created_at, id)
"""
FIGURES = """
    count() AS requests,
    countIf(status_class = '2xx') AS succeeded,
    sum(prompt_tokens),
    sum(completion_tokens),
    toString(sum(cost_usd)),
    sum(estimated),
    sumMapIf([error_type], [toUInt64(1)], status_class != '2xx'),
    sumMapIf([assumeNotNull(tier)], [toUInt64(1)], tier IS NOT NULL),
    sumMap([latency_bucket], [toUInt64(1)]),
    sumMapIf([assumeNotNull(ttft_bucket)], [toUInt64(1)], ttft_bucket IS NOT NULL)
"""
BUCKET_START = {"hour": "toStartOfHour(created_at)", "day": "toStartOfDay(created_at)"}
GROUP_VALUE = {
    "model": "model",
    "key": "toString(api_key_id)",
    "tier": "toString(tier)",
    "status": "status_class",
}
FILTERS = (
    ("models", "model IN {models:Array(String)}"),
    ("api_key_ids", "api_key_id IN {api_key_ids:Array(UInt64)}"),
    ("tiers", "tier IN {tiers:Array(UInt16)}"),
    ("statuses", "status_class IN {statuses:Array(String)}"),
)


class ClickHouseBackend:
    name = "clickhouse"

    def __init__(self, session: ClickHouseSession, database: str = "analytics") -> None:
        self.session = session
        self.table = f"{database}.{TABLE}"
        session.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        session.execute(CREATE_TABLE.format(table=self.table))

    @classmethod
    def from_settings(cls) -> ClickHouseBackend:
        return cls(session_for(settings.CLICKHOUSE_URL), settings.CLICKHOUSE_DATABASE)

    def apply(self, rows: Sequence[LedgerRow]) -> None:
        """Insert the rows; applying them again changes no answer (FINAL dedupes)."""
        if rows:
            self.session.insert(self.table, COLUMNS, [columns_of(row) for row in rows])

    def summary(self, query: Query) -> Figures:
        rows = self.session.query(*select_figures(self.table, query, timeseries=False))
        return figures_of(rows[0][2:]) if rows else Figures()

    def timeseries(self, query: Query) -> list[Point]:
        rows = self.session.query(*select_figures(self.table, query, timeseries=True))
        points = [
            Point(datetime.fromtimestamp(int(t), UTC), group, figures_of(rest)) for t, group, *rest in rows
        ]
        return sorted(points, key=lambda point: (point.t, point.group or ""))

    def reset(self) -> None:
        self.session.execute(f"TRUNCATE TABLE {self.table}")


def columns_of(row: LedgerRow) -> list[object]:
    return [
        row.tenant_id,
        row.created_at.astimezone(UTC),
        row.id,
        row.model,
        row.api_key_id,
        row.tier,
        status_class(row.status),
        row.error_type,
        row.prompt_tokens,
        row.completion_tokens,
        row.cost_usd,
        int(row.estimated),
        bucket_of(row.latency_ms),
        None if row.ttft_ms is None else bucket_of(row.ttft_ms),
    ]


def select_figures(table: str, query: Query, *, timeseries: bool) -> tuple[str, dict[str, object]]:
    """The one SELECT of the backend: the figures of one tenant's rows in the
    query's range, per (bucket start, group) for a timeseries."""
    bucket = f"toUnixTimestamp({BUCKET_START[query.granularity]})" if timeseries else "0"
    group = GROUP_VALUE[query.group_by] if timeseries and query.group_by else "CAST(NULL, 'Nullable(String)')"
    parameters: dict[str, object] = {
        "tenant_id": query.tenant_id,
        "start": utc_text(query.start),
        "end": utc_text(query.end),
    }
    conditions = [
        "tenant_id = {tenant_id:UInt64}",
        "created_at >= {start:DateTime64(6, 'UTC')}",
        "created_at < {end:DateTime64(6, 'UTC')}",
    ]
    for name, condition in FILTERS:
        values: tuple[Any, ...] = getattr(query, name)
        if values:
            parameters[name] = list(values)
            conditions.append(condition)
    # Built from this module's constants only; every value is a parameter.
    sql = f"SELECT {bucket} AS t, {group} AS g, {FIGURES} FROM {table} FINAL WHERE {' AND '.join(conditions)}"  # noqa: S608
    sql += " GROUP BY t, g ORDER BY t, g"
    return sql, parameters


def figures_of(values: Sequence[Any]) -> Figures:
    requests, succeeded, prompt, completion, cost, estimated, errors, tiers, latency, ttft = values
    return Figures(
        requests=int(requests),
        succeeded=int(succeeded),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cost_usd=Decimal(cost),
        estimated=int(estimated),
        errors={str(key): count for key, count in counts_of(errors).items()},
        tiers={int(key): count for key, count in counts_of(tiers).items()},
        latency=Histogram({int(key): count for key, count in counts_of(latency).items()}),
        ttft=Histogram({int(key): count for key, count in counts_of(ttft).items()}),
    )


def counts_of(summed: Sequence[Sequence[Any]]) -> dict[Any, int]:
    """sumMap's (keys, counts) pair as {key: count}."""
    keys, counts = summed
    return {key: int(count) for key, count in zip(keys, counts, strict=True)}
