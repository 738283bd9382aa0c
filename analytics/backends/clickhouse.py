"""The analytics read model on ClickHouse (`ANALYTICS_BACKEND=clickhouse`, `CLICKHOUSE_URL`).

Hourly rollups, as in PostgreSQL (analytics/backends/postgres.py), in one
AggregatingMergeTree table: a row per tenant x hour x model x key x tier x
status class x error type, its sums and its latency and TTFT histograms (maps
of analytics.sketch buckets, bucketed here in Python with `bucket_of`, so both
engines read the same percentiles). ClickHouse merges rows of one key in the
background; every read aggregates (sum, sumMap), so unmerged parts never show.
Day granularity sums the hours of a day. The promises:

- Exactly once without transactions: a batch's rollup rows go in ONE insert
  (one part, written whole or not at all; the table has no partitions to
  split it), each row carrying the batch's last ledger id of its tenant
  (`applied_through`, merged by max). `apply` first drops the rows at or
  below their tenant's mark, so a batch applied again (the worker killed
  after the insert, before its watermark moved in PostgreSQL) adds nothing.
- One tenant per query: every SELECT is built by `Selection`, whose WHERE
  starts with `tenant_id = {tenant_id}`, the table's first key column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from analytics.backends.base import Figures, LedgerRow, Point, Query, status_class
from analytics.backends.clickhouse_sessions import ClickHouseSession, session_for, utc_text

TABLE = "hourly_rollup"
DIMENSIONS = ("tenant_id", "hour", "model", "api_key_id", "tier", "status_class", "error_type")
COLUMNS = (
    *DIMENSIONS,
    "requests",
    "succeeded",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "estimated",
    "latency",
    "ttft",
    "applied_through",
)
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    tenant_id UInt64,
    hour DateTime('UTC'),
    model LowCardinality(String),
    api_key_id Nullable(UInt64),
    tier Nullable(UInt16),
    status_class LowCardinality(String),
    error_type LowCardinality(String),
    requests SimpleAggregateFunction(sum, UInt64),
    succeeded SimpleAggregateFunction(sum, UInt64),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 8)),
    estimated SimpleAggregateFunction(sum, UInt64),
    latency SimpleAggregateFunction(sumMap, Map(Int16, UInt64)),
    ttft SimpleAggregateFunction(sumMap, Map(Int16, UInt64)),
    applied_through SimpleAggregateFunction(max, UInt64)
) ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, hour, model, api_key_id, tier, status_class, error_type)
SETTINGS allow_nullable_key = 1
"""
TOTALS = """
    sum(requests),
    sum(succeeded),
    sum(prompt_tokens),
    sum(completion_tokens),
    toString(sum(cost_usd)),
    sum(estimated)
"""
# Requests by key, gathered in arrays per point: (kind, key, condition).
COUNTED = (
    ("errors", "error_type", "error_type != ''"),
    ("tiers", "toString(assumeNotNull(tier))", "tier IS NOT NULL"),
)
HISTOGRAMS = ("latency", "ttft")
Key = tuple[int, datetime, str, int | None, int | None, str, str]  # DIMENSIONS
BUCKET_START = {"hour": "hour", "day": "toStartOfDay(hour)"}
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
        """Add the rows not applied yet, in one insert (see the module docstring)."""
        marks = self.applied_through({row.tenant_id for row in rows})
        fresh = [row for row in rows if row.id > marks.get(row.tenant_id, 0)]
        if fresh:
            self.session.insert(self.table, COLUMNS, rollup_rows(fresh))

    def applied_through(self, tenant_ids: Iterable[int]) -> dict[int, int]:
        """The last ledger id applied, per tenant (none: nothing applied, or reset)."""
        found = self.session.query(
            f"SELECT tenant_id, max(applied_through) FROM {self.table}"  # noqa: S608 - a constant
            " WHERE tenant_id IN {tenant_ids:Array(UInt64)} GROUP BY tenant_id",
            {"tenant_ids": sorted(tenant_ids)},
        )
        return {int(tenant_id): int(mark) for tenant_id, mark in found}

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
            add_counts(figures[(int(t), group)], kind, keys, counts)
        return figures

    def reset(self, tenant_id: int | None = None) -> None:
        """Forget everything, or one tenant's rows. Not transactional: a rebuild
        killed after this re-applies from its watermark (docs/decisions/0023)."""
        if tenant_id is None:
            self.session.execute(f"TRUNCATE TABLE {self.table}")
        else:
            delete = f"DELETE FROM {self.table} WHERE tenant_id = {{tenant_id:UInt64}}"  # noqa: S608 - a constant
            self.session.execute(delete, {"tenant_id": tenant_id})


def rollup_rows(rows: Sequence[LedgerRow]) -> list[list[object]]:
    """The rows folded into one rollup row per dimensions, each marked with the
    last ledger id of its tenant in `rows`."""
    folded: dict[Key, Figures] = {}
    through: dict[int, int] = {}
    for row in rows:
        hour = row.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        key = (
            row.tenant_id,
            hour,
            row.model,
            row.api_key_id,
            row.tier,
            status_class(row.status),
            row.error_type,
        )
        add_row(folded.setdefault(key, Figures()), row)
        through[row.tenant_id] = max(through.get(row.tenant_id, 0), row.id)
    return [
        [
            *key,
            figures.requests,
            figures.succeeded,
            figures.prompt_tokens,
            figures.completion_tokens,
            figures.cost_usd,
            figures.estimated,
            figures.latency.counts,
            figures.ttft.counts,
            through[key[0]],
        ]
        for key, figures in folded.items()
    ]


def add_row(figures: Figures, row: LedgerRow) -> None:
    figures.requests += 1
    figures.succeeded += status_class(row.status) == "2xx"
    figures.prompt_tokens += row.prompt_tokens
    figures.completion_tokens += row.completion_tokens
    figures.cost_usd += row.cost_usd
    figures.estimated += row.estimated
    figures.latency.add(row.latency_ms)
    if row.ttft_ms is not None:
        figures.ttft.add(row.ttft_ms)


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
            "hour >= {start:DateTime64(6, 'UTC')}",
            "hour < {end:DateTime64(6, 'UTC')}",
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
            f" FROM {self.table} WHERE {where} GROUP BY {keys}"
        )

    def totals(self) -> str:
        return self.select(TOTALS)

    def counted(self) -> str:
        """(t, g, kind, keys, counts) rows: requests by error type and tier, and the
        histograms' buckets."""
        by_key = (
            f"SELECT t, g, '{kind}', groupArray(key), groupArray(c)"  # noqa: S608 - see the class docstring
            f" FROM ({self.select('sum(requests) AS c', condition, key)}) GROUP BY t, g"
            for kind, key, condition in COUNTED
        )
        histograms = (
            f"SELECT t, g, '{name}', arrayMap(b -> toString(b), mapKeys(m)), mapValues(m)"  # noqa: S608
            f" FROM ({self.select(f'sumMap({name}) AS m')})"
            for name in HISTOGRAMS
        )
        return " UNION ALL ".join((*by_key, *histograms))


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


def add_counts(figures: Figures, kind: str, keys: Sequence[str], counts: Sequence[Any]) -> None:
    pairs = zip(keys, counts, strict=True)
    if kind == "errors":
        figures.errors = {key: int(count) for key, count in pairs}
    elif kind == "tiers":
        figures.tiers = {int(key): int(count) for key, count in pairs}
    else:
        getattr(figures, kind).counts.update({int(key): int(count) for key, count in pairs})
