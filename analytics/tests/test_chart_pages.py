"""Charts on the Overview, Usage, Routing and Billing pages over a chosen range,
and their data endpoints (<page>/charts/ as JSON, <page>/charts/<chart>.csv and
.json): the figures the page draws, and nothing for another workspace."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest

from analytics.tests.conftest import Ledger
from analytics.tests.test_dashboard import chart_data, days, series_of, traffic
from billing.tests.factories import PlanFactory
from routing.tests.test_router_api import outcome, record_requests
from tenants.models import ApiKey, Tenant
from testing.tenants import TenantFixture

DAY = timedelta(days=1)


def csv_of(content: bytes) -> list[list[str]]:
    return list(csv.reader(StringIO(content.decode())))


def test_the_usage_page_charts_requests_by_model_outcome_and_key(
    tenant: TenantFixture, ledger: Ledger
) -> None:
    traffic(tenant, ledger)

    response = tenant.web_client().get("/dashboard/usage/", days(ledger))

    assert response.status_code == 200
    content = response.content.decode()
    assert series_of(chart_data(content, "usage-models-chart")) == {
        "sim-small": [1, 1, 0],
        "sim-large": [1, 0, 0],
        "No model served": [0, 1, 0],
    }
    assert series_of(chart_data(content, "usage-spend-chart")) == {
        "sim-large": [0.004, 0, 0],
        "sim-small": [0.001, 0, 0],
        "No model served": [0, 0, 0],
    }
    assert series_of(chart_data(content, "usage-outcomes-chart")) == {
        "Served": [2, 0, 0],
        "Rejected": [0, 1, 0],
        "Failed": [0, 1, 0],
    }
    key = tenant.provisioned.issued_key.api_key
    assert f'<span class="bar-label">{key.name} ({key.prefix})</span>' in content
    window = days(ledger)
    query = f"?from={window['from']}&amp;to={window['to']}"
    assert (
        f'id="usage-outcomes-chart-csv" href="/dashboard/usage/charts/usage-outcomes-chart.csv{query}"'
        in content
    )


def test_a_charts_csv_is_what_it_draws(tenant: TenantFixture, ledger: Ledger) -> None:
    traffic(tenant, ledger)
    client = tenant.web_client()

    response = client.get("/dashboard/usage/charts/usage-outcomes-chart.csv", days(ledger))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-outcomes-chart-')
    first = ledger.start.date()
    assert csv_of(response.content) == [
        ["time_utc", "Served", "Rejected", "Failed"],
        [f"{first.isoformat()}T00:00:00Z", "2", "0", "0"],
        [f"{(first + DAY).isoformat()}T00:00:00Z", "0", "1", "1"],
        [f"{(first + 2 * DAY).isoformat()}T00:00:00Z", "0", "0", "0"],
    ]
    keys = client.get("/dashboard/usage/charts/usage-keys-chart.csv", days(ledger))
    key = tenant.provisioned.issued_key.api_key
    assert csv_of(keys.content)[:2] == [
        ["label", "value", "detail"],
        [f"{key.name} ({key.prefix})", "0.005000", "3 requests"],
    ]


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_written_as_text(
    tenant: TenantFixture, ledger: Ledger
) -> None:
    traffic(tenant, ledger)
    key = tenant.provisioned.issued_key.api_key
    ApiKey.objects.filter(pk=key.pk).update(name='=HYPERLINK("https://evil.example/","open")')

    response = tenant.web_client().get("/dashboard/usage/charts/usage-keys-chart.csv", days(ledger))

    assert csv_of(response.content)[1] == [
        f'\'=HYPERLINK("https://evil.example/","open") ({key.prefix})',
        "0.005000",
        "3 requests",
    ]


def test_the_data_endpoints_answer_json(tenant: TenantFixture, ledger: Ledger) -> None:
    traffic(tenant, ledger)
    client = tenant.web_client()

    one = client.get("/dashboard/overview/charts/overview-tiers-chart.json", days(ledger))
    every = client.get("/dashboard/overview/charts/", days(ledger))

    assert one.status_code == 200
    assert one.json()["title"] == "Tier mix: requests per day by tier"
    assert series_of(one.json()) == {"Tier 1": [1, 1, 0], "Tier 2": [1, 0, 0], "No tier served": [0, 1, 0]}
    assert [chart["id"] for chart in every.json()["data"]] == [
        "overview-requests-chart",
        "overview-spend-chart",
        "overview-tiers-chart",
    ]
    spend = every.json()["data"][1]
    assert series_of(spend)["Spend so far"] == [pytest.approx(0.005)] * 3


def test_another_workspaces_session_gets_nothing_of_ours(
    tenant: TenantFixture, other_tenant: TenantFixture, ledger: Ledger
) -> None:
    traffic(tenant, ledger)
    for url in (
        "/dashboard/usage/charts/usage-outcomes-chart.csv",
        "/dashboard/usage/charts/",
        "/dashboard/overview/charts/overview-requests-chart.json",
        "/dashboard/routing/charts/routing-tier-mix-chart.csv",
        "/dashboard/billing/charts/billing-quota-chart.csv",
    ):
        outsider = other_tenant.web_client()
        outsider.defaults["HTTP_HOST"] = tenant.host  # our host, their session (ended on the first try)
        response = outsider.get(url, days(ledger))
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    # On their own host they see their own (empty) figures.
    own = other_tenant.web_client().get("/dashboard/usage/charts/usage-models-chart.json", days(ledger))
    assert own.status_code == 200
    assert own.json()["series"] == []


def test_a_bad_range_or_an_unknown_chart_is_a_clear_4xx(tenant: TenantFixture) -> None:
    client = tenant.web_client()

    backwards = client.get(
        "/dashboard/usage/charts/usage-models-chart.csv", {"from": "2026-02-02", "to": "2026-02-01"}
    )
    page = client.get("/dashboard/usage/", {"from": "2026-02-02", "to": "2026-02-01"})
    unknown = client.get("/dashboard/usage/charts/no-such-chart.csv")
    other_format = client.get("/dashboard/usage/charts/usage-models-chart.xml")

    assert backwards.status_code == 400
    assert backwards.json()["error"]["message"] == "The range ends before it starts."
    assert page.status_code == 400
    assert "The range ends before it starts." in page.content.decode()
    assert (unknown.status_code, other_format.status_code) == (404, 404)


def test_routing_charts_the_tier_mix_per_day_over_the_range(tenant: TenantFixture) -> None:
    """Counted against today's figures before, since other tests route for the shared tenant too."""
    tenant_id = tenant.tenant.pk
    client = tenant.web_client()
    before = series_of(
        client.get("/dashboard/routing/charts/routing-tier-mix-chart.json", {"range": "7d"}).json()
    )
    record_requests(
        tenant_id,
        outcome(tenant_id, f"req_{tenant_id}_mix_a", tier=1, served=1, failed=False),
        outcome(tenant_id, f"req_{tenant_id}_mix_b", tier=2, served=2, failed=False),
        outcome(tenant_id, f"req_{tenant_id}_mix_c", tier=1, served=1, failed=False),
    )

    page = client.get("/dashboard/routing/", {"range": "7d"})
    exported = client.get("/dashboard/routing/charts/routing-tier-mix-chart.json", {"range": "7d"})

    assert page.status_code == 200
    assert '<a href="?range=7d" aria-current="true">7 days</a>' in page.content.decode()
    mix = series_of(chart_data(page.content.decode(), "routing-tier-mix-chart"))
    today = {tier: (mix[tier][-1] or 0) - (before.get(tier, [0])[-1] or 0) for tier in ("Tier 1", "Tier 2")}
    assert (today["Tier 1"], today["Tier 2"], len(mix["Tier 1"])) == (2, 1, 7)
    assert series_of(exported.json()) == mix


def test_billing_draws_this_periods_quotas(tenant: TenantFixture) -> None:
    plan = PlanFactory.create(
        included_tokens=1_000, included_requests=10, monthly_spend_budget_usd=Decimal("2")
    )
    Tenant.objects.filter(pk=tenant.tenant.pk).update(plan=plan)  # the fixture's object is shared: left alone

    response = tenant.web_client().get("/dashboard/billing/")
    exported = tenant.web_client().get("/dashboard/billing/charts/billing-quota-chart.json")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="billing-quota-chart"' in content
    assert 'aria-valuetext="0 of 1,000"' in content
    assert exported.json()["quotas"] == [
        {"label": "Tokens", "used": 0.0, "limit": 1000.0, "share": 0.0},
        {"label": "Requests", "used": 0.0, "limit": 10.0, "share": 0.0},
        {"label": "Spend vs. budget", "used": 0.0, "limit": 2.0, "share": 0.0},
    ]
