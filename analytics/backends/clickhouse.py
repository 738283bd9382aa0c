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
- One tenant per query: every SELECT is built by `Selection`, whose WHERE
  starts with `tenant_id = {tenant_id}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from analytics.backends.base import Figures, LedgerRow, Point, Query, status_class
from analytics.backends.clickhouse_sessions import ClickHouseSession, session_for, utc_text
from analytics.sketch import bucket_of

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
TOTALS = """
    count(),
    countIf(status_class = '2xx'),
    sum(prompt_tokens),
    sum(completion_tokens),
    toString(sum(cost_usd)),
    sum(estimated)
"""
# The figures counted by key (an error type, a tier, a histogram bucket): a GROUP BY
# each, their counts gathered in arrays per point, which ClickHouse runs many times
# faster than building a map per row (sumMap) and sends in far fewer rows.
COUNTED = (
    ("errors", "error_type", "error_type != ''"),
    ("tiers", "assumeNotNull(tier)", "tier IS NOT NULL"),
    ("latency", "latency_bucket", "1"),
    ("ttft", "assumeNotNull(ttft_bucket)", "ttft_bucket IS NOT NULL"),
)
BUCKET_START = {"hour": "toStartOfHour(created_at)", "day": "toStartOfDay(created_at)"}
GROUP_VALUE = {
    "model": "model",
    "key": "toString(api_key_id)",
    "tier": "toString(tier)",
    "status": "status_class",
}
NO_GROUP = "CAST(NULL, 'Nullable(String)')"
FILTERS = (
    ("models", "model IN {models:Array(String)}"),
    ("api_key_ids", "api_key_id IN {api_key_ids:Array(UInt64)}"),
    ("tiers", "tier IN {tiers:Array(UInt16)}"),
    ("statuses", "status_class IN {statuses:Array(String)}"),
)


class ClickHouseBackend:
    name = "clickhouse"

    def __init__(self, session: ClickHouseSession | None = None, database: str | None = None) -> None:
        """On settings.CLICKHOUSE_URL and CLICKHOUSE_DATABASE unless given; creates the table."""
        self.session = session or session_for(settings.CLICKHOUSE_URL)
        database = database or settings.CLICKHOUSE_DATABASE
        self.table = f"{database}.{TABLE}"
        self.session.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        self.session.execute(CREATE_TABLE.format(table=self.table))

    def apply(self, rows: Sequence[LedgerRow]) -> None:
        """Insert the rows; applying them again changes no answer (FINAL dedupes)."""
        if rows:
            self.session.insert(self.table, COLUMNS, [columns_of(row) for row in rows])

    def summary(self, query: Query) -> Figures:
        return self.figures(query, timeseries=False).get((0, None), Figures())

    def timeseries(self, query: Query) -> list[Point]:
        figures = self.figures(query, timeseries=True)
        points = [Point(datetime.fromtimestamp(t, UTC), group, each) for (t, group), each in figures.items()]
        return sorted(points, key=lambda point: (point.t, point.group or ""))

    def figures(self, query: Query, *, timeseries: bool) -> dict[tuple[int, str | None], Figures]:
        """The figures per (bucket start, group), from two SELECTs: the totals, then
        the counts by key."""
        selection = Selection.of(self.table, query, timeseries=timeseries)
        figures: dict[tuple[int, str | None], Figures] = {}
        for t, group, *totals in self.session.query(selection.totals(), selection.parameters):
            figures[(int(t), group)] = figures_of(totals)
        for t, group, kind, keys, counts in self.session.query(selection.counted(), selection.parameters):
            for key, count in zip(keys, counts, strict=True):
                count_into(figures[(int(t), group)], kind, key, int(count))
        return figures

    def reset(self, tenant_id: int | None = None) -> None:
        """Forget everything, or one tenant's rows. Not transactional: a rebuild
        killed after this re-applies from its watermark (docs/decisions/0023)."""
        if tenant_id is None:
            self.session.execute(f"TRUNCATE TABLE {self.table}")
        else:
            delete = f"DELETE FROM {self.table} WHERE tenant_id = {{tenant_id:UInt64}}"  # noqa: S608 - a constant
            self.session.execute(delete, {"tenant_id": tenant_id})


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


@dataclass(frozen=True)
class Selection:
    """One tenant's rows in a query's range and filters, per (bucket start, group).

    Built from this module's constants only: every value is a parameter, and
    the first condition is always the tenant's."""

    table: str
    bucket: str
    group: str
    conditions: tuple[str, ...]
    parameters: dict[str, object]

    @classmethod
    def of(cls, table: str, query: Query, *, timeseries: bool) -> Selection:
        parameters: dict[str, object] = {
            "tenant_id": query.tenant_id,
            "start": utc_text(whole_hour(query.start)),
            "end": utc_text(whole_hour(query.end, up=True)),
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
        return cls(
            table,
            f"toUnixTimestamp({BUCKET_START[query.granularity]})" if timeseries else "0",
            GROUP_VALUE[query.group_by] if timeseries and query.group_by else NO_GROUP,
            tuple(conditions),
            parameters,
        )

    def select(self, columns: str, condition: str = "1", key: str = "") -> str:
        where = " AND ".join((*self.conditions, condition))
        keys = "t, g" + (", key" if key else "")
        key_column = f", {key} AS key" if key else ""
        return (
            f"SELECT {self.bucket} AS t, {self.group} AS g{key_column}, {columns}"  # noqa: S608 - see the docstring
            f" FROM {self.table} FINAL WHERE {where} GROUP BY {keys}"
        )

    def totals(self) -> str:
        return self.select(TOTALS)

    def counted(self) -> str:
        return " UNION ALL ".join(
            f"SELECT t, g, '{kind}', groupArray(toString(key)), groupArray(c)"  # noqa: S608 - see Selection
            f" FROM ({self.select('count() AS c', condition, key)}) GROUP BY t, g"
            for kind, key, condition in COUNTED
        )


def whole_hour(moment: datetime, *, up: bool = False) -> datetime:
    """Ranges are rounded out to whole hours, the PostgreSQL rollups' grain, so
    both engines answer a query about the same rows."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour + timedelta(hours=1) if up and hour != moment else hour


def figures_of(totals: Sequence[Any]) -> Figures:
    requests, succeeded, prompt, completion, cost, estimated = totals
    return Figures(
        requests=int(requests),
        succeeded=int(succeeded),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cost_usd=Decimal(cost),
        estimated=int(estimated),
    )


def count_into(figures: Figures, kind: str, key: str, count: int) -> None:
    if kind == "errors":
        figures.errors[key] = count
    elif kind == "tiers":
        figures.tiers[int(key)] = count
    elif kind == "latency":
        figures.latency.counts[int(key)] = count
    else:
        figures.ttft.counts[int(key)] = count
