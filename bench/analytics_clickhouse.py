"""The ClickHouse analytics backend's answers at scale, in process on chdb:

a tenant with `--rows` ledger rows over 30 days beside `--tenants` other tenants
with `--other-rows` each, then `summary` and `timeseries` (hourly, by model) of
the tenant's 30 days through `ClickHouseBackend`, `--rounds` times each.

    python bench/analytics_clickhouse.py [--rows 10000000] [--tenants 100]
        [--other-rows 100000] [--rounds 20] [--url https://user:password@host:8443]

Ledger rows are generated and rolled up inside ClickHouse (INSERT ... SELECT
FROM numbers() ... GROUP BY), with the sketch's bucket formula in SQL, so
loading takes seconds; the backend's own `apply` (rows folded in Python, one
insert) is timed on `--apply-rows` rows separately. Runs on chdb
(requirements/dev.txt) unless `--url` names a server, where it fills and
leaves the database `analytics_bench`; no PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from analytics.backends.base import Query
    from analytics.backends.clickhouse import ClickHouseBackend

REPO_ROOT = Path(__file__).resolve().parent.parent
END = datetime(2026, 12, 1, tzinfo=UTC)
START = END - timedelta(days=30)

GENERATE = """
INSERT INTO {table}
SELECT
    tenant_id, toStartOfHour(created_at) AS hour, model, api_key_id, tier, status_class, error_type,
    count(), countIf(status_class = '2xx'), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd), 0,
    sumMap(map(latency_bucket, toUInt64(1))),
    sumMapIf(map(assumeNotNull(ttft_bucket), toUInt64(1)), ttft_bucket IS NOT NULL),
    max(id)
FROM (
    SELECT
        {tenant} + if({spread}, number % {tenants}, 0) AS tenant_id,
        toDateTime64({start}, 6, 'UTC')
            + toIntervalMicrosecond(intDiv(number * 2592000000000, {rows})) AS created_at,
        {first_id} + number AS id,
        ['small-model', 'large-model', 'embed-model'][1 + number % 3] AS model,
        toNullable(toUInt64(10 + number % 7)) AS api_key_id,
        toNullable(toUInt16(1 + intDiv(number, 3) % 3)) AS tier,
        if(number % 10 = 0, '5xx', if(number % 10 = 1, '4xx', '2xx')) AS status_class,
        if(number % 10 = 0, 'provider_error', if(number % 10 = 1, 'rate_limit_exceeded', '')) AS error_type,
        number % 2000 AS prompt_tokens,
        number % 800 AS completion_tokens,
        toDecimal64((number % 100000) / 100000000, 8) AS cost_usd,
        toInt16(ceil(log(1 + (number * 7919) % 30000) / log(1.01 / 0.99))) AS latency_bucket,
        if(number % 2 = 0, toInt16(ceil(log(1 + (number * 104729) % 3000) / log(1.01 / 0.99))), NULL)
            AS ttft_bucket
    FROM numbers({rows})
)
GROUP BY tenant_id, hour, model, api_key_id, tier, status_class, error_type
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--other-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--apply-rows", type=int, default=20_000)
    parser.add_argument(
        "--url", help="a ClickHouse server (CLICKHOUSE_URL's form); chdb in process by default"
    )
    arguments = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()
    from analytics.backends.base import Query
    from analytics.backends.clickhouse import ClickHouseBackend
    from analytics.backends.clickhouse_sessions import session_for
    from analytics.tests.ledger_rows import generated_rows

    with tempfile.TemporaryDirectory() as folder:
        backend = ClickHouseBackend(session_for(arguments.url or f"chdb://{folder}"), "analytics_bench")
        started = time.perf_counter()
        load(backend, arguments.rows, arguments.tenants, arguments.other_rows)
        total = arguments.rows + arguments.tenants * arguments.other_rows
        print(f"loaded {total:,} rows in {elapsed(started)}")
        rows = generated_rows([10_000], START, arguments.apply_rows)
        started = time.perf_counter()
        backend.apply(rows)
        seconds = time.perf_counter() - started
        print(f"apply: {len(rows):,} rows in {seconds:.2f} s ({len(rows) / seconds:,.0f} rows/s)")
        queries = (
            ("summary, 30 days", Query(1, START, END)),
            ("timeseries, 30 days hourly", Query(1, START, END)),
            ("timeseries, 30 days hourly by model", Query(1, START, END, group_by="model")),
            ("timeseries, 30 days daily", Query(1, START, END, granularity="day")),
        )
        for name, query in queries:
            run = backend.summary if name.startswith("summary") else backend.timeseries
            report(name, [timed(run, query) for _ in range(arguments.rounds)])


def load(backend: ClickHouseBackend, rows: int, tenants: int, other_rows: int) -> None:
    table = backend.table
    start = f"'{START:%Y-%m-%d %H:%M:%S}'"
    backend.session.execute(
        GENERATE.format(table=table, tenant=1, spread=0, tenants=1, start=start, first_id=1, rows=rows)
    )
    backend.session.execute(
        GENERATE.format(
            table=table,
            tenant=2,
            spread=1,
            tenants=tenants,
            start=start,
            first_id=rows + 1,
            rows=tenants * other_rows,
        )
    )
    backend.session.execute(f"OPTIMIZE TABLE {table} FINAL")
    rollup_rows = backend.session.query(f"SELECT count() FROM {table} WHERE tenant_id = 1")  # noqa: S608
    print(f"{rollup_rows[0][0]:,} rollup rows of the tenant")


def timed(run: Callable[[Query], object], query: Query) -> float:
    started = time.perf_counter()
    run(query)
    return (time.perf_counter() - started) * 1000


def report(name: str, milliseconds: list[float]) -> None:
    ordered = sorted(milliseconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    print(f"{name}: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms")


def elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


if __name__ == "__main__":
    main()
