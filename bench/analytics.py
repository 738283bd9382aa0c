"""The analytics read model at scale (issue 16, docs/decisions/0022):

- a ledger of `--rows` rows (10 M) for one tenant over `--days` days, 20 keys
  and 5 models, plus `--other-tenants` (100) tenants of `--other-rows` rows
  each, generated in PostgreSQL (INSERT ... SELECT over generate_series);
- the rebuild of the rollups from that ledger (`analytics.rollups.rebuild`, the
  command's path, in batches of 50,000), rows per second;
- the read model's answers for the big tenant over 30 days (the backend, as the
  API calls it, no cache): summary, day timeseries, day timeseries by model,
  hour timeseries over 7 and 30 days; p50 and p95 of `--queries` runs each,
  at ranges shifted by whole hours so both ends are ragged;
- the rollup lag under `--rate` (2,000) events/s for `--seconds` (60): events
  are queued on a Redis stream of the bench's own, moved to the ledger by the
  real flusher and rolled up by the real worker, each run every 2 s as beat
  runs them; lag = age of the oldest ledger row not rolled up yet, sampled
  every 0.5 s (it includes the 2 s flush interval).

    python bench/analytics.py [--rows 10000000] [--days 90] [--other-tenants 100] [--other-rows 20000]
        [--queries 40] [--rate 2000] [--seconds 60] [--json PATH]

Needs the launcher's PostgreSQL and Redis. Runs `manage.py bootstrap`, adds
tenant rows without schemas (the ledger and the rollups are public), and
deletes them, their ledger rows and their rollups at the end.
No Celery worker should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON_PATH = REPO_ROOT / "bench" / "results" / "analytics.json"
CHUNK = 1_000_000
KEYS = 20
REBUILD_BATCH = 50_000  # manage.py analytics_rebuild --batch-size: fewer upserts of the same rollup rows

LEDGER_INSERT = """
INSERT INTO billing_usageevent (request_id, tenant_id, api_key_id, model, tier, prompt_tokens,
    completion_tokens, cost_usd, latency_ms, ttft_ms, status, error_type, estimated, created_at, meter_error)
SELECT %(run)s || '-' || %(tenant)s || '-' || g, %(tenant)s,
    (%(keys)s::bigint[])[1 + g %% greatest(cardinality(%(keys)s::bigint[]), 1)],
    (ARRAY['sim-small', 'sim-medium', 'sim-large', 'gpt-bench', 'claude-bench'])[1 + g %% 5],
    (ARRAY[1, 1, 2, 2, 3])[1 + g %% 5],
    (random() * 2000)::int, (random() * 800)::int, round((random() * 0.002)::numeric, 8),
    least(greatest(1, exp(random_normal(6, 0.8))), 600000)::int,
    CASE WHEN random() < 0.5 THEN NULL ELSE least(greatest(0, exp(random_normal(4.5, 0.7))), 600000)::int END,
    CASE WHEN r < 0.94 THEN 200 WHEN r < 0.97 THEN 429 WHEN r < 0.99 THEN 502 ELSE 400 END,
    CASE WHEN r < 0.94 THEN '' WHEN r < 0.97 THEN 'rate_limit_exceeded' WHEN r < 0.99 THEN 'upstream_error'
        ELSE 'invalid_request_error' END,
    random() < 0.01,
    %(start)s + (g::float8 / %(rows)s) * %(span)s * interval '1 second',
    'bench: not metered'
FROM (SELECT g, random() AS r FROM generate_series(%(low)s, %(high)s) AS g) AS s
"""


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    import django

    django.setup()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def bench_tenants(run: str, count: int) -> list[Any]:
    from tenants.models import Tenant

    tenants = []
    for index in range(count):
        slug = f"bench-an-{run}-{index}"
        tenant = Tenant(schema_name=slug.replace("-", "_"), slug=slug, name="bench analytics")
        tenant.auto_create_schema = False
        tenant.save()
        tenants.append(tenant)
    return tenants


def bench_keys(tenant: Any) -> list[int]:
    from tenants.models import ApiKey

    keys = ApiKey.objects.bulk_create(
        ApiKey(tenant=tenant, name=f"bench {n}", prefix=uuid.uuid4().hex[:16], secret_hash="0" * 64)
        for n in range(KEYS)
    )
    return [key.pk for key in keys]


def generate(run: str, tenant_id: int, keys: list[int], rows: int, days: int) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    for low in range(1, rows + 1, CHUNK):
        high = min(rows, low + CHUNK - 1)
        params: dict[str, Any] = {
            "run": f"bench-{run}",
            "tenant": tenant_id,
            "keys": keys,
            "rows": rows,
            "span": days * 86_400,
            "start": start,
            "low": low,
            "high": high,
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(LEDGER_INSERT, params)


def bench_generation(run: str, args: argparse.Namespace) -> tuple[Any, list[Any], dict[str, float]]:
    from django.db import connection

    started = time.monotonic()
    tenants = bench_tenants(run, 1 + args.other_tenants)
    main, others = tenants[0], tenants[1:]
    generate(run, main.pk, bench_keys(main), args.rows, args.days)
    print(f"  {args.rows:,} rows for the big tenant in {time.monotonic() - started:.0f} s", flush=True)
    for tenant in others:
        generate(run, tenant.pk, [], args.other_rows, args.days)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_usageevent")
    seconds = time.monotonic() - started
    total = args.rows + args.other_tenants * args.other_rows
    print(f"  {total:,} ledger rows generated in {seconds:.0f} s", flush=True)
    return main, tenants, {"ledger_rows": total, "seconds": round(seconds, 1)}


def bench_rebuild() -> dict[str, float]:
    from django.db import connection

    from analytics import rollups

    last = [0.0]

    def report(applied: int, total: int) -> None:
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            print(f"  rebuild: {applied:,} / {total:,}", flush=True)

    started = time.monotonic()
    applied = rollups.rebuild(batch_size=REBUILD_BATCH, report=report)
    seconds = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE analytics_hourlyrollup")
        cursor.execute("ANALYZE analytics_dailyrollup")
        cursor.execute(
            "SELECT (SELECT count(*) FROM analytics_hourlyrollup),"
            " (SELECT count(*) FROM analytics_dailyrollup)"
        )
        hourly, daily = cursor.fetchone()
    return {
        "rows": applied,
        "seconds": round(seconds, 1),
        "rows_per_second": round(applied / seconds),
        "hourly_rollup_rows": hourly,
        "daily_rollup_rows": daily,
    }


def bench_queries(tenant_id: int, count: int) -> dict[str, dict[str, float]]:
    from django.utils import timezone

    from analytics.backends import get_backend
    from analytics.backends.base import Query

    backend = get_backend()
    end = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    kinds: dict[str, Callable[[Any], object]] = {
        "summary, 30 days": lambda start: backend.summary(
            Query(tenant_id, start, start + timedelta(days=30))
        ),
        "timeseries by day, 30 days": lambda start: backend.timeseries(
            Query(tenant_id, start, start + timedelta(days=30), granularity="day")
        ),
        "timeseries by day and model, 30 days": lambda start: backend.timeseries(
            Query(tenant_id, start, start + timedelta(days=30), granularity="day", group_by="model")
        ),
        "timeseries by hour, 7 days": lambda start: backend.timeseries(
            Query(tenant_id, start, start + timedelta(days=7), granularity="hour")
        ),
        "timeseries by hour, 30 days": lambda start: backend.timeseries(
            Query(tenant_id, start, start + timedelta(days=30), granularity="hour")
        ),
    }
    results = {}
    for name, run in kinds.items():
        run(end - timedelta(days=30))  # warm-up
        timings = []
        for index in range(count):
            start = end - timedelta(days=30, hours=7 * index % 200 + 1)
            began = time.perf_counter()
            run(start)
            timings.append((time.perf_counter() - began) * 1000)
        results[name] = {
            "p50_ms": round(statistics.median(timings), 1),
            "p95_ms": round(percentile(timings, 0.95), 1),
        }
        print(f"  {name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms", flush=True)
    return results


def every(seconds: float, stop: threading.Event, work: Callable[[], object]) -> None:
    """Run `work` every `seconds` (as beat sends a task), closing the thread's connection at the end."""
    from django.db import connection

    try:
        while not stop.is_set():
            began = time.monotonic()
            work()
            stop.wait(max(0.0, seconds - (time.monotonic() - began)))
    finally:
        connection.close()


def bench_lag(tenant: Any, rate: int, seconds: float) -> dict[str, float]:
    from django.utils import timezone

    from aiaas.redis_clients import sync_client
    from aiaas.stream_queue import drain
    from analytics import rollups
    from billing import usage

    stream = f"bench-analytics:{uuid.uuid4().hex}"
    client = sync_client("queues")
    stop, produced, lags = threading.Event(), [0], []

    template = usage.UsageRecord(
        request_id="bench",
        tenant_id=tenant.pk,
        api_key_id=None,
        model="sim-small",
        tier=1,
        prompt_tokens=100,
        completion_tokens=50,
        cost_usd=Decimal("0.0001"),
        latency_ms=300,
        ttft_ms=None,
        status=200,
        error_type="",
        estimated=False,
        created_at=timezone.now(),
    ).to_fields()
    fields: dict[Any, Any] = dict(template)

    def produce() -> None:
        """XADD the events the gateway would, `rate` a second in ticks of 0.1 s."""
        tick = 0.1
        while not stop.is_set():
            began = time.monotonic()
            moment = timezone.now().isoformat()
            pipe = client.pipeline(transaction=False)
            for _ in range(int(rate * tick)):
                pipe.xadd(
                    stream, {**fields, "request_id": f"bench-lag-{uuid.uuid4().hex}", "created_at": moment}
                )
                produced[0] += 1
            pipe.execute()
            stop.wait(max(0.0, tick - (time.monotonic() - began)))

    def flush() -> object:
        return drain(lambda size: usage.flush_usage_events(batch_size=size, stream=stream), 500, 30)

    def sample() -> None:
        lags.append(rollups.progress().lag_seconds)

    threads = [
        threading.Thread(target=produce),
        threading.Thread(target=every, args=(2.0, stop, flush)),
        threading.Thread(
            target=every, args=(2.0, stop, lambda: rollups.apply_rollups(time_budget_seconds=25))
        ),
        threading.Thread(target=every, args=(0.5, stop, sample)),
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    client.delete(stream, usage.dead_stream_of(stream))
    steady = lags[len(lags) // 6 :]  # after the first tenth of a minute's warm-up
    return {
        "target_events_per_second": rate,
        "events_per_second": round(produced[0] / elapsed),
        "seconds": round(elapsed, 1),
        "lag_p50_seconds": round(statistics.median(steady), 2),
        "lag_p95_seconds": round(percentile(steady, 0.95), 2),
        "lag_max_seconds": round(max(steady), 2),
    }


def forget(tenants: list[Any]) -> None:
    """Delete the bench tenants, their ledger rows and their rollups (in SQL: the ORM
    would collect millions of ids first)."""
    from django.db import connection

    ids = [tenant.pk for tenant in tenants]
    with connection.cursor() as cursor:
        for table in ("billing_usageevent", "analytics_hourlyrollup", "analytics_dailyrollup"):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = ANY(%s)", [ids])  # noqa: S608 - constants
    for tenant in tenants:
        tenant.delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000, help="ledger rows of the big tenant")
    parser.add_argument("--days", type=int, default=90, help="days the ledger spans")
    parser.add_argument("--other-tenants", type=int, default=100)
    parser.add_argument("--other-rows", type=int, default=20_000, help="ledger rows of each other tenant")
    parser.add_argument("--queries", type=int, default=40, help="runs of each query")
    parser.add_argument("--rate", type=int, default=2_000, help="events/s for the lag measurement")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to sustain the rate")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON_PATH)
    args = parser.parse_args()
    setup_django()
    from django.core.management import call_command

    call_command("bootstrap", verbosity=0)
    run = uuid.uuid4().hex[:8]
    tenants: list[Any] = []
    try:
        print("generating the ledger", flush=True)
        main_tenant, tenants, generation = bench_generation(run, args)
        print("rebuilding the rollups", flush=True)
        rebuild = bench_rebuild()
        print("querying", flush=True)
        queries = bench_queries(main_tenant.pk, args.queries)
        print(f"sustaining {args.rate} events/s for {args.seconds:g} s", flush=True)
        lag = bench_lag(main_tenant, args.rate, args.seconds)
    finally:
        if tenants:
            print("deleting the bench tenants and their rows", flush=True)
            forget(tenants)
    results = {"generation": generation, "rebuild": rebuild, "queries": queries, "lag": lag}
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


def print_table(results: dict[str, Any]) -> None:
    generation, rebuild, lag = results["generation"], results["rebuild"], results["lag"]
    print()
    print(f"{'ledger rows':44} {generation['ledger_rows']:>12,}")
    print(f"{'rollup rebuild, s (rows/s)':44} {rebuild['seconds']:>12} ({rebuild['rows_per_second']:,})")
    print(
        f"{'rollup rows, hourly / daily':44} {rebuild['hourly_rollup_rows']:>12,}"
        f" / {rebuild['daily_rollup_rows']:,}"
    )
    print(f"{'query (big tenant)':44} {'p50 ms':>12} {'p95 ms':>8}")
    for name, timing in results["queries"].items():
        print(f"{name:44} {timing['p50_ms']:>12} {timing['p95_ms']:>8}")
    print(
        f"{'lag at ' + str(lag['events_per_second']) + ' events/s, s (p50/p95/max)':44}"
        f" {lag['lag_p50_seconds']:>12} {lag['lag_p95_seconds']:>8} {lag['lag_max_seconds']:>8}"
    )


if __name__ == "__main__":
    main()
