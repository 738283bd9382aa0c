"""The rollup worker applies every committed ledger row exactly once: a worker
killed between applying a batch and committing it leaves nothing behind, a row
whose flush commits after a later id is not skipped, only one worker runs at a
time, and a rebuild from the ledger equals what the worker built."""

from __future__ import annotations

import io
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from analytics import rollups, tasks
from analytics.backends import get_backend
from analytics.backends.base import Query
from analytics.models import DIMENSIONS, DailyRollup, HourlyRollup, RollupWatermark, Slice
from analytics.tests.conftest import Ledger, apply_all, on_another_connection
from billing.usage import insert
from testing.metrics import registry_value
from testing.tenants import TenantFixture

DOOMED_WORKER = """
import os, sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
from django.conf import settings

for alias in ("default", "analytics"):
    settings.DATABASES[alias]["NAME"] = sys.argv[1]
import django

django.setup()
from analytics import rollups

print("started", flush=True)
rollups.apply_rollups(batch_size=1_000_000)
"""


def rollup_rows(ledger: Ledger, tenant: TenantFixture) -> dict[str, list[dict[str, Any]]]:
    end = ledger.start + timedelta(days=60)

    def read() -> dict[str, list[dict[str, Any]]]:
        return {
            model.__name__: [
                dict(row)
                for row in model.objects.using("default")
                .filter(tenant_id=tenant.tenant.pk, bucket_start__gte=ledger.start, bucket_start__lt=end)
                .order_by(*DIMENSIONS)
                .values()
            ]
            for model in (HourlyRollup, DailyRollup)
        }

    return on_another_connection(read)


def requests_in(ledger: Ledger, tenant: TenantFixture) -> int:
    query = Query(tenant.tenant.pk, ledger.start, ledger.start + timedelta(days=60))
    return on_another_connection(lambda: get_backend().summary(query).requests)


def watermark() -> int:
    return on_another_connection(lambda: RollupWatermark.objects.get(backend="postgres").ledger_id)


def waiting_watermark_update() -> int | None:
    """The backend blocked on updating the watermark, if any."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction sees one snapshot otherwise
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE \"analytics_rollupwatermark\"%%'"
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


def wait_for(condition: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition.__name__}")


def kill_worker_between_apply_and_commit() -> None:
    """Hold the watermark row, so a worker process applies its batch and then waits to
    move the watermark inside its transaction; SIGKILL it there, then let go."""
    locked, release = threading.Event(), threading.Event()

    def hold_watermark() -> None:
        with transaction.atomic():
            RollupWatermark.objects.using("default").select_for_update().get(backend="postgres")
            locked.set()
            release.wait(60)

    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(lambda: on_another_connection(hold_watermark))
        assert locked.wait(30)
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-c", DOOMED_WORKER, connection.settings_dict["NAME"]],
            cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready, _, _ = select.select([process.stdout], [], [], 60)
            assert ready
            assert process.stdout
            assert process.stdout.readline() == "started\n"
            pid = wait_for(waiting_watermark_update)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            for pipe in (process.stdout, process.stderr):
                if pipe:
                    pipe.close()
            release.set()
            holder.result()
    wait_for(lambda: not backend_alive(pid))


def test_a_worker_killed_between_applying_and_committing_loses_and_double_counts_nothing(
    tenant: TenantFixture, ledger: Ledger
) -> None:
    apply_all()
    before = watermark()
    ledger.add([ledger.record(tenant, ledger.start + timedelta(minutes=m)) for m in range(0, 600, 7)])

    kill_worker_between_apply_and_commit()

    assert (requests_in(ledger, tenant), watermark()) == (0, before)
    apply_all()
    assert requests_in(ledger, tenant) == len(range(0, 600, 7))
    assert apply_all() == 0
    assert requests_in(ledger, tenant) == len(range(0, 600, 7))


def test_a_row_committed_after_a_later_id_is_not_skipped(tenant: TenantFixture, ledger: Ledger) -> None:
    apply_all()
    early, late = (ledger.record(tenant, ledger.start + timedelta(hours=h)) for h in (1, 2))
    ledger.request_ids += [early.request_id, late.request_id]
    inserted, commit = threading.Event(), threading.Event()

    def slow_flush() -> None:
        with transaction.atomic():
            insert([early])  # draws the smaller id, commits last
            inserted.set()
            commit.wait(60)

    with ThreadPoolExecutor(2) as pool:
        flush = pool.submit(lambda: on_another_connection(slow_flush))
        assert inserted.wait(30)
        on_another_connection(lambda: insert([late]))
        worker = pool.submit(apply_all)
        time.sleep(0.5)  # the worker waits for the flush in flight instead of passing its id
        assert not worker.done()
        commit.set()
        flush.result()
        worker.result()

    assert requests_in(ledger, tenant) == 2


def test_only_one_worker_runs_at_a_time(tenant: TenantFixture, ledger: Ledger) -> None:
    ledger.add([ledger.record(tenant, ledger.start)])

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [rollups.ROLLUP_WORKER_LOCK])
        try:
            assert apply_all() == 0
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [rollups.ROLLUP_WORKER_LOCK])

    assert apply_all() >= 1
    assert requests_in(ledger, tenant) == 1


def test_a_rebuild_from_the_ledger_equals_the_incremental_rollups(
    tenant: TenantFixture, ledger: Ledger
) -> None:
    records = [
        ledger.record(
            tenant,
            ledger.start + timedelta(minutes=13 * n),
            latency_ms=17 * n % 3_000,
            ttft_ms=None if n % 4 else n,
            model=("sim-small", "sim-large")[n % 2],
            status=(200, 200, 429, 503)[n % 4],
            error_type=("", "", "rate_limit_exceeded", "upstream_error")[n % 4],
        )
        for n in range(700)
    ]
    for part in range(0, 700, 100):  # several worker runs, as traffic arrives
        ledger.add(records[part : part + 100])
        apply_all()
    incremental = rollup_rows(ledger, tenant)
    output = io.StringIO()

    on_another_connection(
        lambda: call_command("analytics_rebuild", "--tenant", tenant.tenant.slug, stdout=output)
    )
    by_tenant = rollup_rows(ledger, tenant)
    on_another_connection(
        lambda: call_command("analytics_rebuild", "--batch-size", "250", stdout=io.StringIO())
    )
    everything = rollup_rows(ledger, tenant)

    without_ids = [{**row, "id": None} for rows in incremental.values() for row in rows]
    assert [{**row, "id": None} for rows in by_tenant.values() for row in rows] == without_ids
    assert [{**row, "id": None} for rows in everything.values() for row in rows] == without_ids
    for slice_ in Slice:  # each slice counts every request once
        assert sum(row["requests"] for row in incremental["DailyRollup"] if row["slice"] == slice_) == 700
    assert "/ " in output.getvalue()
    assert "Rebuilt from" in output.getvalue()


def test_a_rebuild_of_an_unknown_tenant_is_refused(db: None) -> None:
    with pytest.raises(CommandError, match="no tenant 'nobody'"):
        call_command("analytics_rebuild", "--tenant", "nobody", stdout=io.StringIO())


def test_a_rollup_run_reports_how_far_the_read_model_trails_in_the_metrics(
    tenant: TenantFixture, ledger: Ledger
) -> None:
    ledger.add([ledger.record(tenant, ledger.start)])

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [rollups.ROLLUP_WORKER_LOCK])
        try:
            on_another_connection(lambda: tasks.apply_rollups.apply().get())  # another worker holds the lock
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [rollups.ROLLUP_WORKER_LOCK])
        trailing = registry_value("aiaas_analytics_rollup_lag_seconds")
    on_another_connection(lambda: tasks.apply_rollups.apply().get())

    assert trailing >= (timezone.now() - ledger.start).total_seconds() - 60
    assert registry_value("aiaas_analytics_rollup_lag_seconds") == 0
