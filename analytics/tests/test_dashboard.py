"""The dashboard's Analytics page and its CSV export (analytics/web/), over ledger
rows folded into the read model by the rollup worker."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import httpx
import pytest

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from analytics.export import FIXED_COLUMNS, flat
from analytics.tests.conftest import Ledger, apply_all, on_another_connection
from analytics.tests.test_end_to_end import CHAT, ledger_rows_of
from analytics.web.charts import MOST_GROUPS, cost_of, largest_groups, model_label, stacked
from billing.usage import UsageRecord
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.tenants import TenantFixture

PAGE = "/dashboard/analytics/"
EXPORT = "/dashboard/analytics/export.csv"
DAY = timedelta(days=1)


def traffic(tenant: TenantFixture, ledger: Ledger) -> list[UsageRecord]:
    """Two served requests on the window's first day; a refused and a failed one on its second."""
    first = ledger.start + timedelta(hours=10)
    refused = {
        "model": "",
        "tier": None,
        "api_key_id": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": Decimal(0),
    }
    records = [
        ledger.record(tenant, first, latency_ms=100, cost_usd=Decimal("0.001")),
        ledger.record(tenant, first, latency_ms=300, model="sim-large", tier=2, cost_usd=Decimal("0.004")),
        ledger.record(
            tenant,
            first + DAY,
            status=429,
            error_type="rate_limit_error",
            latency_ms=3,
            ttft_ms=None,
            **refused,
        ),
        ledger.record(tenant, first + DAY, status=502, error_type="provider_error", cost_usd=Decimal(0)),
    ]
    ledger.add(records)
    apply_all()
    return records


def days(ledger: Ledger, first: int = 0, count: int = 3) -> dict[str, str]:
    start: date = (ledger.start + first * DAY).date()
    return {"from": start.isoformat(), "to": (start + (count - 1) * DAY).isoformat()}


def chart_data(content: str, chart_id: str) -> dict[str, object]:
    found = re.search(rf'<script id="{chart_id}-data" type="application/json">(.*?)</script>', content)
    assert found is not None, chart_id
    data: dict[str, object] = json.loads(found.group(1))
    return data


def series_of(data: dict[str, object]) -> dict[str, list[float | None]]:
    return {series["label"]: series["values"] for series in data["series"]}  # type: ignore[attr-defined]


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(StringIO(content.decode())))


def test_the_page_charts_the_tenants_figures(tenant: TenantFixture, ledger: Ledger) -> None:
    traffic(tenant, ledger)

    response = tenant.web_client().get(PAGE, days(ledger))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'href="/dashboard/analytics/" aria-current="page">Analytics</a>' in content
    assert '<div class="stat-value" id="kpi-requests">4</div>' in content
    assert '<div class="stat-value" id="kpi-success-rate">50%</div>' in content
    assert '<div class="stat-value" id="kpi-cost">$0.005000</div>' in content
    requests = chart_data(content, "chart-requests")
    assert requests["kind"] == "stacked-bars"
    assert requests["step"] == 86400
    assert series_of(requests) == {
        "Served (2xx)": [2, 0, 0],
        "Refused (4xx)": [0, 1, 0],
        "Failed (5xx)": [0, 1, 0],
    }
    assert series_of(chart_data(content, "chart-spend")) == {
        "sim-large": [0.004, 0, 0],
        "sim-small": [0.001, 0, 0],
        "No model served": [0, 0, 0],
    }
    assert series_of(chart_data(content, "chart-tiers")) == {
        "Tier 1": [1, 1, 0],
        "Tier 2": [1, 0, 0],
        "No tier served": [0, 1, 0],
    }
    latency = series_of(chart_data(content, "chart-latency"))
    assert latency["p50"][2] is None  # a day without requests is a gap, not 0 ms
    assert latency["p99"][0] == pytest.approx(300, rel=0.01)
    key = tenant.provisioned.issued_key.api_key
    assert f'<span class="bar-label">{key.name} ({key.prefix})</span>' in content
    assert '<span class="bar-label">rate_limit_error</span>' in content
    assert 'aria-label="Requests per day by outcome, ' in content
    window = days(ledger)
    assert f'id="export-csv" href="{EXPORT}?from={window["from"]}&amp;to={window["to"]}" download>' in content


def test_another_tenant_sees_none_of_it(
    tenant: TenantFixture, other_tenant: TenantFixture, ledger: Ledger
) -> None:
    traffic(tenant, ledger)

    outsider = other_tenant.web_client().get(PAGE, days(ledger))
    export = other_tenant.web_client().get(EXPORT, days(ledger))

    assert outsider.status_code == 200
    assert '<div class="stat-value" id="kpi-requests">0</div>' in outsider.content.decode()
    assert "No traffic yet" in outsider.content.decode()
    # A row per day of the range, none with a request.
    assert [row["requests"] for row in csv_rows(export.content)] == ["0", "0", "0"]


def test_a_member_of_another_tenant_is_sent_to_sign_in(
    tenant: TenantFixture, other_tenant: TenantFixture, ledger: Ledger
) -> None:
    traffic(tenant, ledger)
    outsider = tenant.web_client(logged_in=False)
    outsider.cookies["sessionid"] = other_tenant.web_client().cookies["sessionid"].value

    for path in (PAGE, EXPORT):
        response = outsider.get(path, days(ledger))
        assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/")


def test_an_anonymous_visitor_is_sent_to_sign_in(tenant: TenantFixture) -> None:
    response = tenant.web_client(logged_in=False).get(EXPORT)

    assert (response.status_code, response["Location"]) == (
        302,
        "/login/?next=/dashboard/analytics/export.csv",
    )


def test_the_csv_export_is_the_apis_timeseries(tenant: TenantFixture, ledger: Ledger) -> None:
    traffic(tenant, ledger)
    window = days(ledger)
    api = tenant.api_client().get(
        "/api/v1/analytics/timeseries",
        {"from": ledger.start.isoformat(), "to": (ledger.start + 3 * DAY).isoformat(), "granularity": "day"},
    )

    response = tenant.web_client().get(EXPORT, window)

    assert api.status_code == 200
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="analytics-{tenant.tenant.slug}-'
        f'{window["from"].replace("-", "")}-{window["to"].replace("-", "")}.csv"'
    )
    rows = csv_rows(response.content)
    assert list(rows[0]) == [
        *FIXED_COLUMNS,
        "errors.provider_error",
        "errors.rate_limit_error",
        "tiers.1",
        "tiers.2",
    ]
    points = api.json()["data"]
    assert len(rows) == len(points) == 3  # the third day had no request: a zero row
    for row, point in zip(rows, points, strict=True):
        for name, value in flat(point):
            assert row[name] == ("" if value is None else str(value)), name
    assert (rows[0]["t"], rows[0]["requests"], rows[0]["cost_usd"]) == (
        f"{window['from']}T00:00:00Z",
        "2",
        "0.005000",
    )
    assert rows[0]["errors.rate_limit_error"] == "0"
    assert float(rows[0]["ttft_ms.p50"]) == pytest.approx(80, rel=0.01)  # the sketch's bound
    assert (rows[1]["requests"], rows[1]["errors.provider_error"], rows[1]["errors.rate_limit_error"]) == (
        "2",
        "1",
        "1",
    )
    assert (rows[2]["requests"], rows[2]["cost_usd"], rows[2]["latency_ms.p50"]) == ("0", "0.000000", "")


def test_the_csv_export_groups_when_asked(tenant: TenantFixture, ledger: Ledger) -> None:
    traffic(tenant, ledger)

    response = tenant.web_client().get(EXPORT, {**days(ledger), "group_by": "model"})

    # Each day of the range, each group seen in it (the empty group: requests without a model).
    first, second, third = (days(ledger, n)["from"] for n in range(3))
    assert [(row["t"][:10], row["group"], row["requests"]) for row in csv_rows(response.content)] == [
        (first, "", "0"),
        (first, "sim-large", "1"),
        (first, "sim-small", "1"),
        (second, "", "1"),
        (second, "sim-large", "0"),
        (second, "sim-small", "1"),
        (third, "", "0"),
        (third, "sim-large", "0"),
        (third, "sim-small", "0"),
    ]


def test_the_csv_export_writes_a_group_a_spreadsheet_would_run_as_text(
    tenant: TenantFixture, ledger: Ledger
) -> None:
    ledger.add([ledger.record(tenant, ledger.start + timedelta(hours=10), model="=1+2")])
    apply_all()

    response = tenant.web_client().get(EXPORT, {**days(ledger), "group_by": "model"})

    assert {row["group"] for row in csv_rows(response.content)} == {"'=1+2"}  # one row a day


def test_a_range_without_requests_says_so(tenant: TenantFixture, ledger: Ledger) -> None:
    traffic(tenant, ledger)

    content = tenant.web_client().get(PAGE, days(ledger, first=10)).content.decode()

    assert "<h2>No requests in this range</h2>" in content
    first, last = ledger.start + 10 * DAY, ledger.start + 12 * DAY
    assert f"but none from {first:%b %d} to {last:%b %d, %Y} (UTC)." in content
    assert 'id="chart-requests"' not in content


def test_a_workspace_without_traffic_is_told_how_to_start(tenant: TenantFixture, ledger: Ledger) -> None:
    apply_all()

    content = tenant.web_client().get(PAGE, days(ledger)).content.decode()

    assert "<h2>No traffic yet</h2>" in content
    assert 'href="/dashboard/keys/">API keys</a>' in content
    assert 'id="analytics-lag"' not in content


def test_requests_not_counted_yet_are_explained(tenant: TenantFixture, ledger: Ledger) -> None:
    apply_all()
    ledger.add([ledger.record(tenant, ledger.start + timedelta(hours=1))])

    content = tenant.web_client().get(PAGE, days(ledger)).content.decode()

    assert "<h2>Nothing counted yet</h2>" in content
    assert re.search(r"Analytics is [\d,]+ s behind the usage ledger \(1 request of all workspaces", content)
    apply_all()
    # Another range: the first answer is cached for ANALYTICS_CACHE_SECONDS.
    caught_up = tenant.web_client().get(PAGE, days(ledger, count=2)).content.decode()
    assert '<div class="stat-value" id="kpi-requests">1</div>' in caught_up
    assert 'id="analytics-lag"' not in caught_up


def test_a_preset_range_is_marked_current(tenant: TenantFixture) -> None:
    response = tenant.web_client().get(PAGE, {"range": "24h"})

    assert response.status_code == 200
    assert '<a href="?range=24h" aria-current="true">24 hours</a>' in response.content.decode()
    assert '<a href="?range=7d">7 days</a>' in response.content.decode()
    assert response.context["figures"].range.granularity == "hour"
    default = tenant.web_client().get(PAGE).content.decode()
    assert '<a href="?range=7d" aria-current="true">7 days</a>' in default


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"range": "1y"}, "Range: Select a valid choice. 1y is not one of the available choices."),
        ({"from": "yesterday", "to": "2026-01-02"}, "From: Enter a valid date."),
        ({"from": "2026-01-02"}, "A custom range needs both a from and a to date."),
        ({"from": "2026-01-02", "to": "2026-01-01"}, "The range ends before it starts."),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "A range spans at most 366 days."),
        ({"from": "2026-01-01", "to": "2999-01-01"}, "To: The range cannot end after today (UTC)."),
        ({"range": "7d", "from": "2026-01-01", "to": "2026-01-02"}, "Choose a preset or a from and to date"),
    ],
)
def test_a_bad_range_is_a_400_page_that_says_why(
    tenant: TenantFixture, query: dict[str, str], error: str
) -> None:
    client = tenant.web_client()

    page = client.get(PAGE, query)
    export = client.get(EXPORT, query)

    assert (page.status_code, export.status_code) == (400, 400)
    assert error in page.content.decode()
    assert 'id="export-csv"' not in page.content.decode()
    assert 'id="range-errors"' in export.content.decode()


def test_an_unknown_grouping_is_a_400(tenant: TenantFixture) -> None:
    response = tenant.web_client().get(EXPORT, {"group_by": "tenant"})

    assert response.status_code == 400
    assert (
        "Group by: Select a valid choice. tenant is not one of the available choices."
        in response.content.decode()
    )


def test_a_member_reads_the_page_without_the_managers_links(tenant: TenantFixture, ledger: Ledger) -> None:
    apply_all()
    member = browser_for(tenant, make_user(tenant, role=Role.MEMBER))

    response = member.get(PAGE, days(ledger))

    assert response.status_code == 200
    assert "<h2>No traffic yet</h2>" in response.content.decode()
    assert "/dashboard/playground/" not in response.content.decode()


def test_a_stacked_chart_shows_the_largest_groups_and_sums_the_rest_as_other() -> None:
    axis = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    points = [
        {"t": "2026-12-01T00:00:00Z", "group": f"model-{index}", "cost_usd": f"{index}.000000"}
        for index in range(1, MOST_GROUPS + 3)
    ]
    order = largest_groups(points, cost_of)

    series = stacked(axis, points, cost_of, order, model_label)

    assert [(one.label, one.values) for one in series] == [
        *[(f"model-{index}", (float(index), 0)) for index in range(MOST_GROUPS + 2, 2, -1)],
        ("Other", (1.0 + 2.0, 0)),
    ]


def test_gateway_traffic_reaches_the_page(gateway: str, serving_tenant: TenantFixture) -> None:
    issued = on_another_connection(
        lambda: create_api_key(
            serving_tenant.tenant, name="analytics-page-e2e", scopes=[ApiKeyScope.INFERENCE]
        )
    )
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {issued.secret}"}) as client:
        for _ in range(3):
            assert client.post(f"{gateway}/chat/completions", json=CHAT).status_code == 200
    assert ledger_rows_of(issued.api_key.pk, 3) == 3
    apply_all()

    content = serving_tenant.web_client().get(PAGE, {"range": "24h"}).content.decode()

    label = f"{issued.api_key.name} ({issued.api_key.prefix})"
    assert re.search(
        rf'<span class="bar-label">{re.escape(label)}</span>\s*<span class="bar-value">\$[0-9.]+ '
        r'<span class="muted">3 requests</span>',
        content,
    )
    assert "sim-small" in series_of(chart_data(content, "chart-spend"))
