"""The dashboard's routing page: how `auto` routed the tenant's traffic, and its quality target."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from analytics.ranges import DateRange
from routing.router.services import tenant_routing, update_settings
from routing.web.charts import ROUTING_CHARTS, report_over
from routing.web.forms import RoutingSettingsForm
from tenants.web.base import PageAccess, tenant_page


@tenant_page
@require_http_methods(["GET", "POST"])
def routing(request: HttpRequest, access: PageAccess) -> HttpResponse:
    tenant = access.tenant
    current = tenant_routing(tenant.pk)
    if request.method == "POST":
        access.require_manager()
        form = RoutingSettingsForm(request.POST)
        if form.is_valid():
            update_settings(tenant.pk, **form.cleaned_data)
            messages.success(request, "Saved the routing settings.")
            return redirect("dashboard:routing")
    else:
        form = RoutingSettingsForm(
            initial={"quality_target": current.quality_target, "exploration_rate": current.exploration_rate}
        )
    charts, status = ROUTING_CHARTS.context(request, access)
    date_range = charts.get("date_range")
    report = report_over(tenant.pk, date_range) if isinstance(date_range, DateRange) else None
    context: dict[str, Any] = {
        **charts,
        "range_form": charts["form"],
        "report": report,
        "totals": report["totals"] if report else None,
        "days": [day for day in report["daily"] if day["routed_requests"]] if report else [],
        "form": form,
        "can_manage": access.can_manage,
    }
    return render(request, "dashboard/routing.html", context, status=status)
