"""The PostgreSQL read model: hourly and daily rollups in four slices (analytics/models.py).

`apply` folds a batch of ledger rows into one delta per hour and full set of
dimensions in Python, coarsens those into the other slices and into days, and
upserts each table in one statement from a COPY-filled temporary table, on the default
(primary) connection, so it joins the rollup worker's transaction and commits
with the watermark. A conflicting row's histograms are merged in SQL.

Reads go to the connection the database router names for the rollups (the
`analytics` alias: a replica, or the primary opened read-only), from the
coarsest slice holding the dimensions the query filters or groups by. A range
takes day rows for its whole days and hour rows for its ragged ends; times are
rounded out to whole hours, the rollups' grain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, router

from analytics.backends.base import Figures, LedgerRow, Point, Query, status_class
from analytics.models import ANY_STATUS, DailyRollup, HourlyRollup, Slice
from analytics.sketch import Histogram

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOURLY, DAILY = HourlyRollup._meta.db_table, DailyRollup._meta.db_table
UNIQUE_DIMENSIONS = {HOURLY: "analytics_hourly_dimensions", DAILY: "analytics_daily_dimensions"}
# tenant_id, slice, bucket_start, model, api_key_id, tier, status_class, error_type
Key = tuple[int, str, datetime, str, int | None, int | None, str, str]
# The slices keeping each dimension; the others hold "" (model) or null (key).
KEEPS_MODEL = {Slice.ALL, Slice.MODEL}
KEEPS_KEY = {Slice.ALL, Slice.KEY}


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

    def merge(self, other: Delta) -> None:
        self.requests += other.requests
        self.succeeded += other.succeeded
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.estimated += other.estimated
        self.latency.merge(other.latency)
        self.ttft.merge(other.ttft)


def truncate(moment: datetime, grain: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if grain == "day" else hour


def hourly_deltas(rows: Sequence[LedgerRow]) -> dict[Key, Delta]:
    """One delta per hour and full set of dimensions (the `all` slice)."""
    found: dict[Key, Delta] = {}
    for row in rows:
        key = (
            row.tenant_id,
            Slice.ALL.value,
            truncate(row.created_at, "hour"),
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


def coarsened(deltas: dict[Key, Delta], slice_: Slice, grain: str) -> dict[Key, Delta]:
    """The `all` slice's hourly deltas summed into `slice_` at `grain`."""
    found: dict[Key, Delta] = {}
    for (tenant_id, _, bucket, model, api_key_id, tier, status, error_type), delta in deltas.items():
        key = (
            tenant_id,
            slice_.value,
            truncate(bucket, grain),
            model if slice_ in KEEPS_MODEL else "",
            api_key_id if slice_ in KEEPS_KEY else None,
            tier,
            status,
            error_type,
        )
        into = found.get(key)
        if into is None:
            into = found[key] = Delta()
        into.merge(delta)
    return found


def histogram_rows(deltas: dict[Key, Delta]) -> dict[Key, Delta]:
    """The rows of `ANY_STATUS` (analytics/models.py): each (slice, bucket, model, key)'s
    histograms over every tier, status class and error type, and no counts."""
    found: dict[Key, Delta] = {}
    for (tenant_id, slice_, bucket, model, api_key_id, *_), delta in deltas.items():
        key = (tenant_id, slice_, bucket, model, api_key_id, None, ANY_STATUS, "")
        into = found.get(key)
        if into is None:
            into = found[key] = Delta()
        into.latency.merge(delta.latency)
        into.ttft.merge(delta.ttft)
    return found


def array_text(histogram: Histogram) -> tuple[str, str]:
    """The histogram as two PostgreSQL array literals, buckets sorted, and their counts."""
    buckets = sorted(histogram.counts)
    return (
        "{" + ",".join(map(str, buckets)) + "}",
        "{" + ",".join(str(histogram.counts[bucket]) for bucket in buckets) + "}",
    )


COLUMNS = (
    ("tenant_id", "bigint"),
    ("slice", "text"),
    ("bucket_start", "timestamptz"),
    ("model", "text"),
    ("api_key_id", "bigint"),
    ("tier", "smallint"),
    ("status_class", "text"),
    ("error_type", "text"),
    ("requests", "bigint"),
    ("succeeded", "bigint"),
    ("prompt_tokens", "bigint"),
    ("completion_tokens", "bigint"),
    ("cost_usd", "numeric"),
    ("estimated", "bigint"),
    ("latency_buckets", "integer[]"),
    ("latency_counts", "bigint[]"),
    ("ttft_buckets", "integer[]"),
    ("ttft_counts", "bigint[]"),
)
SUMS = ("requests", "succeeded", "prompt_tokens", "completion_tokens", "cost_usd", "estimated")


def merged(column: str) -> str:
    """SET clause merging a conflicting row's histogram with the incoming one."""
    return (
        f"({column}_buckets, {column}_counts) = (SELECT coalesce(array_agg(b ORDER BY b), '{{}}'), "  # noqa: S608
        "coalesce(array_agg(c ORDER BY b), '{}') FROM (SELECT b, sum(c)::bigint AS c FROM ("
        f"SELECT * FROM unnest(r.{column}_buckets, r.{column}_counts) UNION ALL "
        f"SELECT * FROM unnest(EXCLUDED.{column}_buckets, EXCLUDED.{column}_counts)) AS u(b, c) "
        "GROUP BY b) AS m)"
    )


STAGE = "analytics_rollup_stage"


def stage_sql() -> str:
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    return f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({columns}) ON COMMIT DELETE ROWS"


def upsert_sql(table: str) -> str:
    names = ", ".join(name for name, _ in COLUMNS)
    updates = ", ".join(
        [*(f"{name} = r.{name} + EXCLUDED.{name}" for name in SUMS), merged("latency"), merged("ttft")]
    )
    return (
        f"INSERT INTO {table} AS r ({names}) SELECT {names} FROM {STAGE} "  # noqa: S608 - constants
        f"ON CONFLICT ON CONSTRAINT {UNIQUE_DIMENSIONS[table]} DO UPDATE SET {updates}"
    )


def upsert(table: str, deltas: dict[Key, Delta]) -> None:
    """COPY the deltas into a temporary table, then upsert them from there in one
    statement: COPY formats scalars in C, and histograms go as array literals, where
    binding thousands of array parameters is Python work per element."""
    names = ", ".join(name for name, _ in COLUMNS)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(stage_sql())
        with cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN") as copy:
            for key, delta in deltas.items():
                copy.write_row(
                    (
                        *key,
                        delta.requests,
                        delta.succeeded,
                        delta.prompt_tokens,
                        delta.completion_tokens,
                        delta.cost_usd,
                        delta.estimated,
                        *array_text(delta.latency),
                        *array_text(delta.ttft),
                    )
                )
        cursor.execute(upsert_sql(table))
        cursor.execute(f"TRUNCATE {STAGE}")


class PostgresBackend:
    name = "postgres"

    def apply(self, rows: Sequence[LedgerRow]) -> None:
        """Upsert the rows' deltas on the default connection, inside the caller's
        transaction (the rollup worker's, which also moves the watermark)."""
        hourly = hourly_deltas(rows)
        for table, grain in ((HOURLY, "hour"), (DAILY, "day")):
            deltas: dict[Key, Delta] = {}
            for slice_ in Slice:
                deltas |= (
                    hourly if (slice_, grain) == (Slice.ALL, "hour") else coarsened(hourly, slice_, grain)
                )
            upsert(table, deltas | histogram_rows(deltas))

    def reset(self, tenant_id: int | None = None) -> None:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            for table in (HOURLY, DAILY):
                if tenant_id is None:
                    cursor.execute(f"TRUNCATE {table}")
                else:
                    cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])  # noqa: S608

    def summary(self, query: Query) -> Figures:
        # Whole days from day rows, whatever granularity a timeseries would use.
        found = figures_of(replace(query, granularity="day"), "NULL::timestamptz", "NULL::text")
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


def slice_of(query: Query) -> Slice:
    """The coarsest slice holding every dimension the query filters or groups by."""
    model = bool(query.models) or query.group_by == "model"
    key = bool(query.api_key_ids) or query.group_by == "key"
    return {
        (False, False): Slice.TENANT,
        (True, False): Slice.MODEL,
        (False, True): Slice.KEY,
        (True, True): Slice.ALL,
    }[(model, key)]


def ranges(query: Query) -> list[tuple[str, datetime, datetime]]:
    """(table, start, end) parts covering the query: day rows for whole days (unless
    hour granularity asks for hours), hour rows for the rest."""
    start = truncate(query.start, "hour")
    end = truncate(query.end, "hour") + (HOUR if query.end != truncate(query.end, "hour") else timedelta(0))
    first_day = truncate(start, "day") + (DAY if start != truncate(start, "day") else timedelta(0))
    last_day = truncate(end, "day")
    if query.granularity == "hour" or first_day >= last_day:
        return [(HOURLY, start, end)]
    return [(HOURLY, start, first_day), (DAILY, first_day, last_day), (HOURLY, last_day, end)]


def selection(query: Query, *, histograms: bool = False) -> tuple[str, list[Any]]:
    """The rollup rows of the query, as a SQL union over both levels, with parameters:
    the rows of counts, or (`histograms`) the rows to merge histograms from, which
    are the `ANY_STATUS` rows unless the query filters or groups by tier or status class."""
    use_any = histograms and not (query.tiers or query.statuses or query.group_by in ("tier", "status"))
    filters = " AND status_class = %s" if use_any else " AND status_class <> %s"
    filter_params: list[Any] = [ANY_STATUS]
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
                f"SELECT * FROM {table} WHERE tenant_id = %s AND slice = %s"  # noqa: S608
                f" AND bucket_start >= %s AND bucket_start < %s{filters}"
            )
            params += [query.tenant_id, slice_of(query).value, start, end, *filter_params]
    return " UNION ALL ".join(parts), params


def figures_of(query: Query, t: str, group: str) -> dict[tuple[datetime | None, str | None], Figures]:
    rows_sql, params = selection(query)
    if not rows_sql:
        return {}
    found: dict[tuple[datetime | None, str | None], Figures] = {}
    with connections[router.db_for_read(HourlyRollup)].cursor() as cursor:
        cursor.execute(
            f"SELECT {t}, {group}, tier, error_type, sum(requests), sum(succeeded), sum(prompt_tokens), "  # noqa: S608
            f"sum(completion_tokens), sum(cost_usd), sum(estimated) FROM ({rows_sql}) AS r "
            "GROUP BY 1, 2, 3, 4",
            params,
        )
        for moment, key, tier, error_type, *sums in cursor.fetchall():
            add_sums(found.setdefault((moment, key), Figures()), tier, error_type, *sums)
        rows_sql, params = selection(query, histograms=True)
        # The bucket and group once per rollup row, not once per histogram bucket; each
        # point's merged histogram comes back as one row of two arrays.
        cursor.execute(
            f"WITH r AS MATERIALIZED (SELECT {t} AS t, {group} AS g, x.* FROM ({rows_sql}) AS x) "  # noqa: S608
            + " UNION ALL ".join(MERGED_HISTOGRAMS.format(kind=kind) for kind in ("latency", "ttft")),
            params,
        )
        for moment, key, kind, buckets, counts in cursor.fetchall():
            if (moment, key) in found:
                getattr(found[(moment, key)], kind).counts.update(zip(buckets, counts, strict=True))
    return found


MERGED_HISTOGRAMS = (
    "(SELECT t, g, '{kind}', array_agg(b ORDER BY b), array_agg(c ORDER BY b) FROM ("
    "SELECT t, g, u.b, sum(u.c)::bigint AS c FROM r, unnest(r.{kind}_buckets, r.{kind}_counts) AS u(b, c) "
    "GROUP BY 1, 2, 3) AS m GROUP BY 1, 2)"
)


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
