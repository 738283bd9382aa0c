"""Charts on a dashboard page over a chosen range, and what each shows as CSV or JSON.

A page declares a `ChartPage`: its name and how it builds its charts for a
tenant and a range. Its view takes `context(request, access)` (the range
picker's state and the charts), and its URLs `urls()`:
`<name>/charts/<chart id>.csv` and `.json`, the same figures the page draws,
built through the same tenant page guard (another workspace's session gets a 404).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from io import StringIO

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from aiaas.charts import Exportable
from analytics.export import as_text
from analytics.ranges import DateRange, Preset
from analytics.web.forms import RangeForm
from tenants.web.base import PageAccess, tenant_page

Charts = Mapping[str, Exportable]
Build = Callable[[PageAccess, DateRange], Charts]


def chart_csv(chart: Exportable) -> str:
    out = StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([as_text(cell) for cell in chart.csv_header()])
    writer.writerows([[as_text(cell) for cell in row] for row in chart.csv_rows()])
    return out.getvalue()


@dataclass(frozen=True)
class ChartPage:
    name: str  # the page's URL name in the `dashboard` namespace, and its path
    build: Build

    def context(self, request: HttpRequest, access: PageAccess) -> tuple[dict[str, object], int]:
        """The range picker (`form`, `presets`, `current`), the range, its `charts` and
        each chart's export links; status 400 and no charts for a range it refuses."""
        now = timezone.now()
        form = RangeForm(request.GET, today=now.date())
        context: dict[str, object] = {"form": form, "presets": list(Preset)}
        if not form.is_valid():
            return context, 400
        date_range = form.date_range(now)
        query = request.GET.urlencode()
        context |= {
            "date_range": date_range,
            "current": date_range.preset,
            "charts": self.build(access, date_range),
            "chart_export": {
                "base": reverse(f"dashboard:{self.name}-charts"),
                "query": f"?{query}" if query else "",
            },
        }
        return context, 200

    def urls(self) -> list[URLPattern]:
        return [
            path(f"{self.name}/charts/", self.index(), name=f"{self.name}-charts"),
            *(
                path(
                    f"{self.name}/charts/<slug:chart>.{format}",
                    self.export(format),
                    name=f"{self.name}-{format}",
                )
                for format in ("csv", "json")
            ),
        ]

    def index(self) -> Callable[..., HttpResponseBase]:
        """Every chart of the page over the range, as JSON."""

        @tenant_page
        @require_GET
        def charts(request: HttpRequest, access: PageAccess) -> HttpResponse:
            built = self.built(request, access)
            if isinstance(built, HttpResponse):
                return built
            charts, _ = built
            return JsonResponse({"object": "list", "data": [chart.as_json() for chart in charts.values()]})

        return charts

    def export(self, format: str) -> Callable[..., HttpResponseBase]:
        """One chart's figures over the range, as CSV or JSON."""

        @tenant_page
        @require_GET
        def chart(request: HttpRequest, access: PageAccess, chart: str) -> HttpResponse:
            built = self.built(request, access)
            if isinstance(built, HttpResponse):
                return built
            charts, date_range = built
            found = next((each for each in charts.values() if each.id == chart), None)
            if found is None:
                raise Http404(f"No chart {chart} on this page.")
            if format == "json":
                return JsonResponse(found.as_json())
            response = HttpResponse(chart_csv(found), content_type="text/csv; charset=utf-8")
            name = f"{chart}-{access.tenant.slug}-{date_range.start:%Y%m%d}-{date_range.last_day:%Y%m%d}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response

        return chart

    def built(self, request: HttpRequest, access: PageAccess) -> tuple[Charts, DateRange] | HttpResponse:
        now = timezone.now()
        form = RangeForm(request.GET, today=now.date())
        if not form.is_valid():
            problems = " ".join(form.problems())
            error = {"message": problems, "type": "invalid_request_error"}
            return JsonResponse({"error": error}, status=400)
        date_range = form.date_range(now)
        return self.build(access, date_range), date_range
