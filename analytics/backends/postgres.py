"""The PostgreSQL read model: hourly and daily rollups (analytics/models.py).

`apply` folds a batch of ledger rows into one delta per rollup row in Python,
then upserts each level in a few statements on the default (primary)
connection, so it joins the rollup worker's transaction and commits with the
watermark. A conflicting row's histograms are merged in SQL (buckets summed).

Reads go to the connection the database router names for the rollups (the
`analytics` alias: a replica, or the primary opened read-only). A range takes
day rows for its whole days and hour rows for its ragged ends; times are
rounded out to whole hours, the rollups' grain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, router

from analytics.backends.base import Figures, LedgerRow, Point, Query, status_class
from analytics.models import DIMENSIONS, DailyRollup, HourlyRollup
from analytics.sketch import Histogram

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UPSERT_CHUNK = 1000  # rows per INSERT: 17 parameters each, well under PostgreSQL's 65,535
LEVELS = (
    (HourlyRollup._meta.db_table, "analytics_hourly_dimensions", "hour"),
    (DailyRollup._meta.db_table, "analytics_daily_dimensions", "day"),
)
Key = tuple[int, datetime, str, int | None, int | None, str, str]


@dataclass
class Delta:
    requests: int = 0
    succeeded: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated: int = 0
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)

    def add(self, row: LedgerRow) -> None:
        self.requests += 1
        self.succeeded += row.status < 400
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.cost_usd += row.cost_usd
        self.estimated += row.estimated
        self.latency.add(row.latency_ms)
        if row.ttft_ms is not None:
            self.ttft.add(row.ttft_ms)

    def values(self) -> list[object]:
        return [
            self.requests,
            self.succeeded,
            self.prompt_tokens,
            self.completion_tokens,
            self.cost_usd,
            self.estimated,
            *arrays(self.latency),
            *arrays(self.ttft),
        ]


def arrays(histogram: Histogram) -> tuple[list[int], list[int]]:
    buckets = sorted(histogram.counts)
    return buckets, [histogram.counts[bucket] for bucket in buckets]


def truncate(moment: datetime, grain: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if grain == "day" else hour


def deltas(rows: Sequence[LedgerRow], grain: str) -> dict[Key, Delta]:
    found: dict[Key, Delta] = {}
    for row in rows:
        key = (
            row.tenant_id,
            truncate(row.created_at, grain),
            row.model,
            row.api_key_id,
            row.tier,
            status_class(row.status),
            row.error_type,
        )
        delta = found.get(key)
        if delta is None:
            delta = found[key] = Delta()
        delta.add(row)
    return found


def merged(column: str) -> str:
    """SET clause merging a conflicting row's histogram with the incoming one."""
    return (
        f"({column}_buckets, {column}_counts) = (SELECT coalesce(array_agg(b ORDER BY b), '{{}}'), "  # noqa: S608
        "coalesce(array_agg(c ORDER BY b), '{}') FROM (SELECT b, sum(c)::bigint AS c FROM ("
        f"SELECT * FROM unnest(r.{column}_buckets, r.{column}_counts) UNION ALL "
        f"SELECT * FROM unnest(EXCLUDED.{column}_buckets, EXCLUDED.{column}_counts)) AS u(b, c) "
        "GROUP BY b) AS m)"
    )


SUMS = ("requests", "succeeded", "prompt_tokens", "completion_tokens", "cost_usd", "estimated")
COLUMNS = (*DIMENSIONS, *SUMS, "latency_buckets", "latency_counts", "ttft_buckets", "ttft_counts")
PLACEHOLDERS = (
    "(" + ", ".join(["%s"] * (len(DIMENSIONS) + len(SUMS))) + ", %s::integer[], %s::bigint[]" * 2 + ")"
)
UPDATES = ", ".join(
    [*(f"{name} = r.{name} + EXCLUDED.{name}" for name in SUMS), merged("latency"), merged("ttft")]
)


def upsert_sql(table: str, constraint: str, count: int) -> str:
    return (
        f"INSERT INTO {table} AS r ({', '.join(COLUMNS)}) VALUES {', '.join([PLACEHOLDERS] * count)} "  # noqa: S608
        f"ON CONFLICT ON CONSTRAINT {constraint} DO UPDATE SET {UPDATES}"
    )


def chunks(items: list[tuple[Key, Delta]], size: int) -> Iterator[list[tuple[Key, Delta]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class PostgresBackend:
    name = "postgres"

    def apply(self, rows: Sequence[LedgerRow]) -> None:
        """Upsert the rows' deltas on the default connection, inside the caller's
        transaction (the rollup worker's, which also moves the watermark)."""
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            for table, constraint, grain in LEVELS:
                for chunk in chunks(list(deltas(rows, grain).items()), UPSERT_CHUNK):
                    params: list[Any] = [value for key, delta in chunk for value in (*key, *delta.values())]
                    cursor.execute(upsert_sql(table, constraint, len(chunk)), params)

    def reset(self, tenant_id: int | None = None) -> None:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            for table, _, _ in LEVELS:
                if tenant_id is None:
                    cursor.execute(f"TRUNCATE {table}")
                else:
                    cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])  # noqa: S608

    def summary(self, query: Query) -> Figures:
        found = figures_of(query, "NULL::timestamptz", "NULL::text")
        return found.get((None, None), Figures())

    def timeseries(self, query: Query) -> list[Point]:
        t = "bucket_start" if query.granularity == "hour" else "date_trunc('day', bucket_start, 'UTC')"
        found = figures_of(query, t, group_expression(query))
        return [
            Point(t=moment, group=group, figures=figures)
            for (moment, group), figures in sorted(found.items(), key=lambda item: point_order(item[0]))
            if moment is not None
        ]


def point_order(key: tuple[datetime | None, str | None]) -> tuple[datetime | None, bool, str]:
    moment, group = key
    return moment, group is not None, group or ""


def group_expression(query: Query) -> str:
    return {
        None: "NULL::text",
        "model": "model",
        "key": "api_key_id::text",
        "tier": "tier::text",
        "status": "status_class",
    }[query.group_by]


def ranges(query: Query) -> list[tuple[str, datetime, datetime]]:
    """(table, start, end) parts covering the query: day rows for whole days (unless
    hour granularity asks for hours), hour rows for the rest."""
    start = truncate(query.start, "hour")
    end = truncate(query.end, "hour") + (HOUR if query.end != truncate(query.end, "hour") else timedelta(0))
    first_day = truncate(start, "day") + (DAY if start != truncate(start, "day") else timedelta(0))
    last_day = truncate(end, "day")
    hourly, daily = LEVELS[0][0], LEVELS[1][0]
    if query.granularity == "hour" or first_day >= last_day:
        return [(hourly, start, end)]
    return [(hourly, start, first_day), (daily, first_day, last_day), (hourly, last_day, end)]


def selection(query: Query) -> tuple[str, list[Any]]:
    """The rollup rows of the query, as a SQL union over both levels, with parameters."""
    filters, filter_params = "", []
    for column, values in (
        ("model", query.models),
        ("api_key_id", query.api_key_ids),
        ("tier", query.tiers),
        ("status_class", query.statuses),
    ):
        if values:
            filters += f" AND {column} = ANY(%s)"
            filter_params.append(list(values))
    parts, params = [], []
    for table, start, end in ranges(query):
        if start < end:
            parts.append(
                f"SELECT * FROM {table} WHERE tenant_id = %s"  # noqa: S608
                f" AND bucket_start >= %s AND bucket_start < %s{filters}"
            )
            params += [query.tenant_id, start, end, *filter_params]
    return " UNION ALL ".join(parts), params


def figures_of(query: Query, t: str, group: str) -> dict[tuple[datetime | None, str | None], Figures]:
    rows_sql, params = selection(query)
    if not rows_sql:
        return {}
    found: dict[tuple[datetime | None, str | None], Figures] = {}
    with connections[router.db_for_read(HourlyRollup)].cursor() as cursor:
        cursor.execute(
            f"WITH r AS ({rows_sql}) SELECT {t}, {group}, tier, error_type, sum(requests), "  # noqa: S608
            "sum(succeeded), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd), sum(estimated) "
            "FROM r GROUP BY 1, 2, 3, 4",
            params,
        )
        for moment, key, tier, error_type, *sums in cursor.fetchall():
            add_sums(found.setdefault((moment, key), Figures()), tier, error_type, *sums)
        histogram = (
            "SELECT {t}, {group}, '{kind}', u.b, sum(u.c) FROM r, "
            "unnest(r.{kind}_buckets, r.{kind}_counts) AS u(b, c) GROUP BY 1, 2, 4"
        )
        cursor.execute(
            f"WITH r AS ({rows_sql}) "
            + " UNION ALL ".join(
                histogram.format(t=t, group=group, kind=kind) for kind in ("latency", "ttft")
            ),
            params,
        )
        for moment, key, kind, bucket, count in cursor.fetchall():
            getattr(found[(moment, key)], kind).counts[bucket] = int(count)
    return found


def add_sums(
    figures: Figures,
    tier: int | None,
    error_type: str,
    requests: int,
    succeeded: int,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal,
    estimated: int,
) -> None:
    figures.requests += int(requests)
    figures.succeeded += int(succeeded)
    figures.prompt_tokens += int(prompt_tokens)
    figures.completion_tokens += int(completion_tokens)
    figures.cost_usd += cost_usd
    figures.estimated += int(estimated)
    if error_type:
        figures.errors[error_type] = figures.errors.get(error_type, 0) + int(requests)
    if tier is not None:
        figures.tiers[tier] = figures.tiers.get(tier, 0) + int(requests)
