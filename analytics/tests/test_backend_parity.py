"""The same ledger, fed by the same rollup worker to PostgreSQL and to ClickHouse
(on chdb), gives the same answers: summaries and timeseries over ranges on and
off the hour, both granularities, every group_by and the filters."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import timedelta

import pytest

pytest.importorskip("chdb", reason="chdb (requirements/dev.txt) runs ClickHouse in process; not installed")

from analytics import rollups
from analytics.backends.base import Query, figures_json
from analytics.backends.clickhouse import ClickHouseBackend
from analytics.backends.clickhouse_sessions import ChdbSession
from analytics.backends.postgres import PostgresBackend
from analytics.tests.conftest import Ledger, apply_all, on_another_connection
from analytics.tests.ledger_rows import generated_rows
from billing.usage import UsageRecord
from testing.tenants import TenantFixture


def feed(ledger: Ledger, tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    """1,500 generated rows over three days, committed to the ledger, for two tenants."""
    ids = {1: tenant, 2: other_tenant}
    records = []
    for row in generated_rows(ids, ledger.start, 1_500):
        owner = ids[row.tenant_id]
        fields = asdict(row) | {"request_id": f"req_parity_{ledger.start:%Y%m%d}_{row.id}"}
        del fields["id"]
        fields |= {
            "tenant_id": owner.tenant.pk,
            "created_at": row.created_at + timedelta(minutes=row.id % 60),
        }
        if row.api_key_id is not None:
            fields["api_key_id"] = owner.provisioned.issued_key.api_key.pk if row.api_key_id % 2 else None
        records.append(UsageRecord(**fields))
    ledger.add(records)


def queries(ledger: Ledger, tenant_id: int) -> list[Query]:
    start, end = ledger.start, ledger.start + timedelta(days=3, hours=2)
    ragged = Query(tenant_id, start + timedelta(hours=5, minutes=17), start + timedelta(hours=50, minutes=3))
    return [
        Query(tenant_id, start, end),
        ragged,
        replace(ragged, granularity="day"),
        Query(tenant_id, start, end, granularity="day", group_by="model"),
        replace(ragged, group_by="key"),
        Query(tenant_id, start, end, granularity="day", group_by="tier", statuses=("2xx", "5xx")),
        Query(tenant_id, start, end, group_by="status", models=("large-model", "embed-model")),
        replace(ragged, granularity="day", group_by="model", tiers=(2, 3)),
    ]


def apply_to(backend: ClickHouseBackend) -> None:
    """What the rollup worker does when ClickHouse is the configured engine."""
    with rollups.worker_lock(wait=True):
        rollups.catch_up(backend, rollups.BATCH_SIZE, float("inf"))


def answers(backend: PostgresBackend | ClickHouseBackend, query: Query) -> object:
    summary = figures_json(backend.summary(query))
    points = [(point.t, point.group, figures_json(point.figures)) for point in backend.timeseries(query)]
    return summary, points


def test_postgresql_and_clickhouse_answer_the_same(
    ledger: Ledger, tenant: TenantFixture, other_tenant: TenantFixture, chdb_session: ChdbSession
) -> None:
    feed(ledger, tenant, other_tenant)
    clickhouse = ClickHouseBackend(chdb_session, database="analytics_parity")
    apply_all()
    on_another_connection(lambda: apply_to(clickhouse))
    postgres = PostgresBackend()

    for tenant_id in (tenant.tenant.pk, other_tenant.tenant.pk):
        for query in queries(ledger, tenant_id):
            expected = answers(postgres, query)
            assert expected[0]["requests"] > 0  # type: ignore[index]
            assert answers(clickhouse, query) == expected, query
