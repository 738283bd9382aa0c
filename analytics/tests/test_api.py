"""GET /api/v1/analytics/summary and /timeseries: figures of the read model over
any range (day rows for whole days, hour rows for the ragged ends), filters,
clear 400s, a brief per-tenant cache, reads on the analytics alias only, and
nothing of one tenant visible to another's key."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from analytics import selectors
from analytics.backends.base import Figures, Point, Query, status_class
from analytics.tests.conftest import Ledger, apply_all
from billing.usage import UsageRecord
from testing.openapi import response_validator
from testing.tenants import TenantFixture

SUMMARY_URL = "/api/v1/analytics/summary"
TIMESERIES_URL = "/api/v1/analytics/timeseries"


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def traffic(ledger: Ledger, tenant: TenantFixture, days: int = 3, count: int = 600) -> list[UsageRecord]:
    rng = random.Random(count)
    records = []
    for _ in range(count):
        status = rng.choice([200, 200, 200, 200, 429, 502])
        records.append(
            ledger.record(
                tenant,
                ledger.start + timedelta(seconds=rng.randrange(days * 86_400)),
                model=rng.choice(["sim-small", "sim-large"]),
                tier=rng.choice([1, 2, None]),
                api_key_id=rng.choice([tenant.provisioned.issued_key.api_key.pk, None]),
                status=status,
                error_type={200: "", 429: "rate_limit_exceeded", 502: "upstream_error"}[status],
                prompt_tokens=rng.randrange(1_000),
                completion_tokens=rng.randrange(500),
                cost_usd=Decimal(rng.randrange(10_000)) / Decimal(10**8),
                latency_ms=rng.randrange(1, 5_000),
                estimated=rng.random() < 0.05,
            )
        )
    ledger.add(records)
    apply_all()
    return records


def expected(records: list[UsageRecord]) -> dict[str, Any]:
    errors: dict[str, int] = {}
    tiers: dict[str, int] = {}
    for record in records:
        if record.error_type:
            errors[record.error_type] = errors.get(record.error_type, 0) + 1
        if record.tier is not None:
            tiers[str(record.tier)] = tiers.get(str(record.tier), 0) + 1
    succeeded = sum(record.status < 400 for record in records)
    return {
        "requests": len(records),
        "succeeded": succeeded,
        "errors": dict(sorted(errors.items())),
        "tiers": dict(sorted(tiers.items())),
        "prompt_tokens": sum(record.prompt_tokens for record in records),
        "completion_tokens": sum(record.completion_tokens for record in records),
        "cost_usd": f"{sum((record.cost_usd for record in records), Decimal(0)):.6f}",
        "estimated_requests": sum(record.estimated for record in records),
    }


def picked(answer: dict[str, Any]) -> dict[str, Any]:
    return {name: answer[name] for name in expected([])}


def get(client: APIClient, url: str, **params: Any) -> dict[str, Any]:
    """The answer, checked against the OpenAPI document."""
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    errors = [error.message for error in response_validator(f"{url}/", "get").iter_errors(answer)]
    assert errors == [], answer
    return answer


def test_the_summary_over_a_range_cutting_hours_and_days_counts_exactly_its_requests(
    tenant: TenantFixture, api_client: APIClient, ledger: Ledger
) -> None:
    records = traffic(ledger, tenant)
    # From 05:30 on the first day (read from 05:00) to 07:10 on the third (read to 08:00).
    start, end = (
        ledger.start + timedelta(hours=5, minutes=30),
        ledger.start + timedelta(days=2, hours=7, minutes=10),
    )
    inside = [r for r in records if hour(start) <= r.created_at < hour(end) + timedelta(hours=1)]

    answer = get(api_client, SUMMARY_URL, **{"from": z(start), "to": z(end)})

    assert answer["object"] == "analytics.summary"
    assert (answer["from"], answer["to"]) == (z(hour(start)), z(hour(end) + timedelta(hours=1)))
    assert picked(answer) == expected(inside)
    assert answer["success_rate"] == pytest.approx(expected(inside)["succeeded"] / len(inside))
    assert answer["total_tokens"] == answer["prompt_tokens"] + answer["completion_tokens"]
    assert set(answer["latency_ms"]) == {"p50", "p90", "p95", "p99"}
    assert answer["freshness"]["pending_rows"] == 0
    assert answer["freshness"]["watermark"] > 0


def test_day_points_add_up_to_the_summary_and_cut_days_hold_only_their_hours(
    tenant: TenantFixture, api_client: APIClient, ledger: Ledger
) -> None:
    records = traffic(ledger, tenant)
    start, end = ledger.start + timedelta(hours=20), ledger.start + timedelta(days=2, hours=3)
    params = {"from": z(start), "to": z(end), "granularity": "day"}

    points = get(api_client, TIMESERIES_URL, **params)["data"]

    assert [point["t"] for point in points] == [z(ledger.start + timedelta(days=day)) for day in range(3)]
    for point in points:
        day = datetime.fromisoformat(point["t"])
        inside = [r for r in records if max(day, start) <= r.created_at < min(day + timedelta(days=1), end)]
        assert picked(point) == expected(inside)
        assert point["group"] is None


def test_hour_points_grouped_by_model_have_one_point_per_hour_and_model(
    tenant: TenantFixture, api_client: APIClient, ledger: Ledger
) -> None:
    """Every hour of the range has a point for every model seen in it, zero where the
    model had no request that hour."""
    records = traffic(ledger, tenant, days=1, count=40)
    start, end = ledger.start, ledger.start + timedelta(hours=10)

    answer = get(api_client, TIMESERIES_URL, **{"from": z(start), "to": z(end), "group_by": "model"})

    assert (answer["object"], answer["granularity"], answer["group_by"]) == ("list", "hour", "model")
    models = sorted({r.model for r in records if r.created_at < end})
    wanted = [(z(start + timedelta(hours=h)), model) for h in range(10) for model in models]
    assert [(point["t"], point["group"]) for point in answer["data"]] == wanted
    with_requests = {(z(hour(r.created_at)), r.model) for r in records if r.created_at < end}
    assert 0 < len(with_requests) < len(wanted)  # some hours of some model are empty
    for point in answer["data"]:
        inside = [r for r in records if z(hour(r.created_at)) == point["t"] and r.model == point["group"]]
        assert picked(point) == expected(inside)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"model": "sim-large"}, lambda r, key: r.model == "sim-large"),
        ({"tier": "1,2"}, lambda r, key: r.tier in (1, 2)),
        ({"status": "4xx,5xx"}, lambda r, key: r.status >= 400),
        ({"key": "PREFIX"}, lambda r, key: r.api_key_id == key.pk),
        ({"key": "ID"}, lambda r, key: r.api_key_id == key.pk),
        ({"status": "5xx", "model": "sim-small"}, lambda r, key: r.status >= 500 and r.model == "sim-small"),
    ],
)
def test_filters_keep_only_the_requests_they_name(
    params: dict[str, str], keep: Any, tenant: TenantFixture, api_client: APIClient, ledger: Ledger
) -> None:
    records = traffic(ledger, tenant)
    key = tenant.provisioned.issued_key.api_key
    params = {
        name: {"PREFIX": key.prefix, "ID": str(key.pk)}.get(value, value) for name, value in params.items()
    }
    window = {"from": z(ledger.start), "to": z(ledger.start + timedelta(days=3))}

    answer = get(api_client, SUMMARY_URL, **window, **params)

    assert picked(answer) == expected([r for r in records if keep(r, key)])


def test_grouping_by_status_names_the_status_classes(
    tenant: TenantFixture, api_client: APIClient, ledger: Ledger
) -> None:
    records = traffic(ledger, tenant, days=1, count=100)
    window = {"from": z(ledger.start), "to": z(ledger.start + timedelta(days=1)), "granularity": "day"}

    points = get(api_client, TIMESERIES_URL, **window, group_by="status")["data"]

    assert {point["group"]: point["requests"] for point in points} == {
        group: sum(status_class(r.status) == group for r in records) for group in ("2xx", "4xx", "5xx")
    }


@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        (SUMMARY_URL, {"from": "yesterday"}, "from"),
        (SUMMARY_URL, {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        (SUMMARY_URL, {"from": "2026-01-01T10:00:00Z", "to": "2026-01-01T10:00:00Z"}, "from"),
        (SUMMARY_URL, {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        (SUMMARY_URL, {"to": "9999-12-31T23:30:00Z"}, "to"),
        (SUMMARY_URL, {"tier": "one"}, "tier"),
        (SUMMARY_URL, {"tier": "99999"}, "tier"),
        (SUMMARY_URL, {"status": "3xx"}, "status"),
        (SUMMARY_URL, {"key": "nosuchprefix"}, "key"),
        (SUMMARY_URL, {"model": ","}, "model"),
        (SUMMARY_URL, {"model": ",".join(["m"] * 21)}, "model"),
        (TIMESERIES_URL, {"granularity": "minute"}, "granularity"),
        (TIMESERIES_URL, {"group_by": "day"}, "group_by"),
        (
            TIMESERIES_URL,
            {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "granularity": "hour"},
            "granularity",
        ),
    ],
)
def test_bad_queries_get_a_400_naming_the_parameter(
    url: str, params: dict[str, str], param: str, api_client: APIClient
) -> None:
    response = api_client.get(url, params)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"].startswith(f"{param}: ")


def test_another_tenants_key_sees_none_of_the_figures(
    tenant: TenantFixture, other_tenant: TenantFixture, outsider_client: APIClient, ledger: Ledger
) -> None:
    traffic(ledger, tenant, days=1, count=50)
    window = {"from": z(ledger.start), "to": z(ledger.start + timedelta(days=1))}
    own_key = str(tenant.provisioned.issued_key.api_key.pk)

    summary = get(outsider_client, SUMMARY_URL, **window)
    by_key = get(outsider_client, SUMMARY_URL, **window, key=own_key)
    series = get(outsider_client, TIMESERIES_URL, **window, group_by="key")
    prefix = outsider_client.get(SUMMARY_URL, {**window, "key": tenant.provisioned.issued_key.api_key.prefix})

    assert (summary["requests"], by_key["requests"], series["data"]) == (0, 0, [])
    assert summary["latency_ms"] == {"p50": None, "p90": None, "p95": None, "p99": None}
    assert prefix.status_code == 400
    assert prefix.json()["error"]["param"] == "key"


def test_reads_use_the_read_only_analytics_alias_and_nothing_else_of_the_rollups(
    tenant: TenantFixture, api_client: APIClient, ledger: Ledger
) -> None:
    traffic(ledger, tenant, days=1, count=20)
    window = {"from": z(ledger.start), "to": z(ledger.start + timedelta(days=1))}

    with (
        CaptureQueriesContext(connections["analytics"]) as analytics,
        CaptureQueriesContext(connections["default"]) as default,
    ):
        get(api_client, TIMESERIES_URL, **window)

    assert any("analytics_hourlyrollup" in query["sql"] for query in analytics.captured_queries)
    assert not any("rollup" in query["sql"] for query in default.captured_queries)
    with connections["analytics"].cursor() as cursor:
        cursor.execute("SHOW transaction_read_only")
        assert cursor.fetchone() == ("on",)


def test_answers_are_kept_briefly_per_tenant(
    tenant: TenantFixture, api_client: APIClient, ledger: Ledger, settings: Any
) -> None:
    traffic(ledger, tenant, days=1, count=10)
    window = {"from": z(ledger.start), "to": z(ledger.start + timedelta(days=1))}
    first = get(api_client, SUMMARY_URL, **window)
    ledger.add([ledger.record(tenant, ledger.start + timedelta(hours=1))])
    apply_all()

    cached = get(api_client, SUMMARY_URL, **window)
    settings.ANALYTICS_CACHE_SECONDS = 0  # a new query (another filter) is computed afresh
    fresh = get(api_client, SUMMARY_URL, **window, status="2xx,4xx,5xx")

    assert cached == first
    assert fresh["requests"] == first["requests"] + 1


def test_a_grouped_range_too_large_to_fill_keeps_only_its_points_with_requests() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    query = Query(1, start, start + timedelta(days=31), granularity="hour", group_by="key")
    busy = [
        Point(start + timedelta(hours=n), str(key), Figures(requests=1)) for n in (0, 5) for key in range(27)
    ]
    few = [point for point in busy if point.group in ("1", "2")]

    assert selectors.every_bucket(query, busy) == busy  # 744 hours x 27 keys: over the bound
    filled = selectors.every_bucket(query, few)
    assert len(filled) == 744 * 2
    assert sum(point.figures.requests for point in filled) == len(few)
