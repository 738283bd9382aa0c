"""The dashboard's routing page: how `auto` routed the tenant's traffic, and its quality target."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from routing.router.report import routing_report
from routing.router.services import tenant_routing, update_settings
from routing.web.charts import routing_charts
from routing.web.forms import RoutingSettingsForm
from tenants.web.base import PageAccess, tenant_page

REPORT_DAYS = 30


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
    report = routing_report(tenant.pk, REPORT_DAYS)
    context: dict[str, Any] = {
        "report": report,
        "totals": report["totals"],
        "days": [day for day in report["daily"] if day["routed_requests"]],
        "charts": routing_charts(report),
        "form": form,
        "can_manage": access.can_manage,
    }
    return render(request, "dashboard/routing.html", context)
