"""The Usage page's charts over a chosen range (requests and spend by model,
requests by outcome, spend by key), read from the analytics read model as the Analytics page reads
it, and the Billing page's quota bars, from the period's invoice preview."""

from __future__ import annotations

from decimal import Decimal

from aiaas.charts import Bar, BarList, ChartKind, Quota, QuotaList, Unit, requests_text
from analytics.dashboard import spend_by_key, timeseries_of
from analytics.ranges import DateRange
from analytics.web.chart_pages import ChartPage, Charts
from analytics.web.charts import (
    TOP_KEYS,
    charts_over,
    cost_of,
    largest_groups,
    model_label,
    requests_of,
    stacked,
)
from billing.selectors import InvoicePreview, invoice_preview, spend_between
from tenants.web.base import PageAccess

# Outcomes as the Usage page names them: refused by limits or validation (4xx), or failed upstream (5xx).
OUTCOMES = {"2xx": "Served", "4xx": "Rejected", "5xx": "Failed"}


def usage_charts(access: PageAccess, date_range: DateRange) -> Charts:
    tenant = access.tenant
    axis, per, chart = charts_over(date_range)
    by_model = timeseries_of(tenant, date_range, "model")
    by_status = timeseries_of(tenant, date_range, "status")
    outcomes = [status for status in OUTCOMES if any(point["group"] == status for point in by_status)]
    keys = spend_by_key(tenant, timeseries_of(tenant, date_range, "key"))
    return {
        "models": chart(
            "usage-models-chart",
            f"Requests per {per} by model",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            stacked(axis, by_model, requests_of, largest_groups(by_model, requests_of), model_label),
        ),
        "spend": chart(
            "usage-spend-chart",
            f"Spend per {per} by model",
            ChartKind.STACKED_BARS,
            Unit.USD,
            stacked(axis, by_model, cost_of, largest_groups(by_model, cost_of), model_label),
        ),
        "outcomes": chart(
            "usage-outcomes-chart",
            f"Requests per {per}: served, rejected, failed",
            ChartKind.STACKED_BARS,
            Unit.COUNT,
            stacked(axis, by_status, requests_of, outcomes, lambda group: OUTCOMES[group or ""]),
        ),
        "keys": BarList.largest_first(
            "usage-keys-chart",
            "Spend by API key",
            Unit.USD,
            [Bar(key.label, key.cost_usd, requests_text(key.requests)) for key in keys],
            TOP_KEYS,
        ),
    }


def quota_bars(preview: InvoicePreview, spent: Decimal) -> QuotaList:
    """What the plan includes this period and what is used of it (the ledger's figures)."""
    plan = preview.plan
    budget = plan.monthly_spend_budget_usd if plan else None
    return QuotaList(
        "billing-quota-chart",
        "This period's quotas",
        (Unit.COUNT, Unit.COUNT, Unit.USD),
        (
            Quota("Tokens", preview.used_tokens, preview.included_tokens or None),
            Quota("Requests", preview.used_requests, preview.included_requests),
            Quota("Spend vs. budget", spent, budget),
        ),
    )


def billing_charts(access: PageAccess, date_range: DateRange) -> Charts:
    """The current billing period's quotas: the range does not apply (a period is the plan's)."""
    preview = invoice_preview(access.tenant)
    spent = spend_between(access.tenant, preview.period.starts_at, preview.period.ends_at)
    return {"quotas": quota_bars(preview, spent)}


USAGE_CHARTS = ChartPage("usage", usage_charts)
BILLING_CHARTS = ChartPage("billing", billing_charts)
