"""The ClickHouse backend, run in process on chdb: the figures of generated
ledger rows counted one by one, a batch applied twice counted once, and one
tenant's query never seeing another's rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings

pytest.importorskip("chdb", reason="chdb (requirements/dev.txt) runs ClickHouse in process; not installed")

from analytics.backends.base import LedgerRow, Query, figures_json
from analytics.backends.clickhouse import ClickHouseBackend
from analytics.backends.clickhouse_sessions import ChdbSession
from analytics.tests.ledger_rows import expected_figures, generated_rows

START = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
END = START + timedelta(days=3)
TENANT, OTHER = 7, 8


@pytest.fixture
def backend(chdb_session: ChdbSession) -> Iterator[ClickHouseBackend]:
    backend = ClickHouseBackend(chdb_session, database="analytics_test")
    backend.reset()
    yield backend
    backend.reset()


def test_the_summary_counts_every_row_of_the_tenant_in_range(backend: ClickHouseBackend) -> None:
    rows = generated_rows([TENANT, OTHER], START, 2_000)
    backend.apply(rows)
    start, end = START + timedelta(hours=5), START + timedelta(hours=30)

    figures = backend.summary(Query(TENANT, start, end))

    expected = expected_figures(
        row for row in rows if row.tenant_id == TENANT and start <= row.created_at < end
    )
    assert figures.requests == expected.requests > 0
    assert figures_json(figures) == figures_json(expected)
    assert figures.latency == expected.latency


def test_a_batch_applied_twice_counts_once(backend: ClickHouseBackend) -> None:
    rows = generated_rows([TENANT, OTHER], START, 600)
    backend.apply(rows[:400])
    backend.apply(rows[200:])
    backend.apply(rows[200:])

    for tenant_id in (TENANT, OTHER):
        figures = backend.summary(Query(tenant_id, START, END))
        expected = expected_figures(row for row in rows if row.tenant_id == tenant_id)
        assert figures.requests == expected.requests > 250
        assert figures_json(figures) == figures_json(expected)


def test_a_tenant_sees_none_of_another_tenants_rows(backend: ClickHouseBackend) -> None:
    backend.apply(generated_rows([OTHER], START, 100))

    assert backend.summary(Query(TENANT, START, END)).requests == 0
    assert backend.timeseries(Query(TENANT, START, END, group_by="model")) == []
    assert backend.summary(Query(OTHER, START, END)).requests == 100


def test_the_timeseries_has_a_point_per_day_and_group_in_time_order(backend: ClickHouseBackend) -> None:
    rows = generated_rows([TENANT], START, 1_000)
    backend.apply(rows)

    points = backend.timeseries(Query(TENANT, START, END, granularity="day", group_by="status"))

    expected: dict[tuple[datetime, str | None], list[LedgerRow]] = {}
    for row in rows:
        day = row.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
        group = "2xx" if row.status < 400 else ("4xx" if row.status < 500 else "5xx")
        expected.setdefault((day, group), []).append(row)
    assert [(point.t, point.group) for point in points] == sorted(expected)
    for point in points:
        assert figures_json(point.figures) == figures_json(expected_figures(expected[(point.t, point.group)]))


def test_filters_narrow_the_rows(backend: ClickHouseBackend) -> None:
    rows = generated_rows([TENANT], START, 1_000)
    backend.apply(rows)
    query = Query(
        TENANT, START, END, models=("large-model",), api_key_ids=(11, 12), tiers=(2, 3), statuses=("5xx",)
    )

    figures = backend.summary(query)

    expected = expected_figures(
        row
        for row in rows
        if row.model == "large-model" and row.api_key_id in (11, 12) and row.tier in (2, 3)
        if row.status >= 500
    )
    assert figures.requests == expected.requests > 0
    assert figures_json(figures) == figures_json(expected)


def test_one_tenants_rows_can_be_forgotten(backend: ClickHouseBackend) -> None:
    backend.apply(generated_rows([TENANT, OTHER], START, 200))

    backend.reset(TENANT)

    assert backend.summary(Query(TENANT, START, END)).requests == 0
    assert backend.summary(Query(OTHER, START, END)).requests > 0


def test_a_range_is_rounded_out_to_whole_hours(backend: ClickHouseBackend) -> None:
    rows = generated_rows([TENANT], START, 500)
    backend.apply(rows)
    start, end = START + timedelta(hours=3), START + timedelta(hours=9)

    figures = backend.summary(Query(TENANT, start + timedelta(minutes=20), end - timedelta(minutes=50)))

    assert figures_json(figures) == figures_json(
        expected_figures(r for r in rows if start <= r.created_at < end)
    )


def test_a_model_name_with_quotes_is_a_parameter_not_sql(backend: ClickHouseBackend) -> None:
    backend.apply(generated_rows([TENANT], START, 50))

    figures = backend.summary(Query(TENANT, START, END, models=("x' OR 1=1 --", "a\\'b")))

    assert figures.requests == 0


def test_the_backend_needs_a_url(settings: Settings) -> None:
    settings.CLICKHOUSE_URL = ""

    with pytest.raises(ImproperlyConfigured, match="needs CLICKHOUSE_URL"):
        ClickHouseBackend()
