"""The dashboard's Analytics page: the tenant's KPIs over a range, as charts, and
its timeseries as CSV. Both read the API's answers (analytics/dashboard.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from analytics.dashboard import dashboard_figures, timeseries_of
from analytics.export import timeseries_csv
from analytics.ranges import Preset
from analytics.web.charts import charts_of
from analytics.web.forms import ExportForm, RangeForm
from tenants.web.base import PageAccess, tenant_page


@tenant_page
@require_GET
def analytics(request: HttpRequest, access: PageAccess) -> HttpResponse:
    now = timezone.now()
    form = RangeForm(request.GET, today=now.date())
    if not form.is_valid():
        return page(request, form, status=400)
    figures = dashboard_figures(access.tenant, form.date_range(now))
    export_url = f"{reverse('dashboard:analytics-export')}?{request.GET.urlencode()}"
    return page(request, form, figures=figures, charts=charts_of(figures), export_url=export_url)


@tenant_page
@require_GET
def analytics_export(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The range's timeseries (grouped when asked) as CSV, the rows the API's timeseries returns."""
    now = timezone.now()
    form = ExportForm(request.GET, today=now.date())
    if not form.is_valid():
        return page(request, form, status=400)
    date_range = form.date_range(now)
    points = timeseries_of(access.tenant, date_range, form.cleaned_data["group_by"] or None)
    response = HttpResponse(timeseries_csv(points), content_type="text/csv; charset=utf-8")
    name = f"analytics-{access.tenant.slug}-{date_range.start:%Y%m%d}-{date_range.last_day:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def page(request: HttpRequest, form: RangeForm, status: int = 200, **context: object) -> HttpResponse:
    """The Analytics page; without figures (a query it refused), the range picker and its errors."""
    context.update(form=form, presets=list(Preset))
    return render(request, "dashboard/analytics.html", context, status=status)
