"""The dashboard's routing page: how `auto` routed the tenant's traffic, and its quality target."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.web.views import ensure_manager, request_tenant
from routing.router.report import routing_report
from routing.router.services import tenant_routing, update_settings

REPORT_DAYS = 30


class RoutingSettingsForm(forms.Form):
    quality_target = forms.DecimalField(
        min_value=Decimal("0.80"),
        max_value=Decimal("1.00"),
        decimal_places=2,
        help_text="Share of the top tier's quality to keep (0.80 to 1.00).",
    )
    exploration_rate = forms.DecimalField(
        min_value=Decimal("0"),
        max_value=Decimal("0.10"),
        decimal_places=2,
        help_text="Share of close calls sent one tier cheaper, to keep learning (0 to 0.10).",
    )


@login_required
@require_http_methods(["GET", "POST"])
def routing(request: HttpRequest) -> HttpResponse:
    tenant = request_tenant(request)
    current = tenant_routing(tenant.pk)
    if request.method == "POST":
        ensure_manager(request)
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
        "form": form,
        "can_manage": getattr(request.user, "can_manage_team", False),
    }
    return render(request, "dashboard/routing.html", context)
