"""A key's page in the dashboard (tenants/web): its usage over a range, the
analytics figures filtered to that key."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from analytics.tests.conftest import Ledger, apply_all
from analytics.tests.test_dashboard import chart_data, days, series_of
from tenants.models import ApiKey, ApiKeyScope
from tenants.web.forms import SCOPE_EXPLANATIONS
from testing.tenants import TenantFixture


def key_page(api_key: ApiKey) -> str:
    return f"/dashboard/keys/{api_key.pk}/"


def test_a_keys_page_shows_its_own_usage_only(
    tenant: TenantFixture, other_tenant: TenantFixture, ledger: Ledger
) -> None:
    api_key = tenant.provisioned.issued_key.api_key
    at = ledger.start + timedelta(hours=10)
    ledger.add(
        [
            ledger.record(tenant, at, prompt_tokens=1_000, completion_tokens=200, cost_usd=Decimal("0.25")),
            ledger.record(tenant, at, api_key_id=None, cost_usd=Decimal("9")),
            ledger.record(other_tenant, at, api_key_id=other_tenant.provisioned.issued_key.api_key.pk),
        ]
    )
    apply_all()

    response = tenant.web_client().get(key_page(api_key), days(ledger, count=2))

    assert response.status_code == 200
    summary = response.context["figures"].summary
    assert (summary["requests"], summary["total_tokens"], summary["cost_usd"]) == (1, 1_200, "0.250000")
    content = response.content.decode()
    assert '<div class="stat-value" id="key-cost">$0.2500</div>' in content
    assert '<div class="stat-value" id="key-tokens">1,200</div>' in content
    served = series_of(chart_data(content, "chart-key-requests"))
    assert list(served) == ["Served (2xx)"]
    assert sum(value or 0 for value in served["Served (2xx)"]) == 1
    assert SCOPE_EXPLANATIONS[ApiKeyScope.ADMIN] in content


def test_a_keys_page_without_usage_in_the_range_says_so(tenant: TenantFixture, ledger: Ledger) -> None:
    response = tenant.web_client().get(key_page(tenant.provisioned.issued_key.api_key), days(ledger))

    assert response.status_code == 200
    assert 'id="key-usage-empty"' in response.content.decode()
