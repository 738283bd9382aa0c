"""The router's quality page (linked from Routing): the latest run of `auto` against the
top tier on a sample of the tenant's traffic, compared, and starting a new one."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from evals.router_quality import RouterQualityError, router_quality_runs, start_router_quality, top_tier_model
from evals.statistics import Change
from evals.web.forms import RouterQualityForm
from evals.web.keys import inference_keys_of
from tenants.web.base import PageAccess, tenant_page

HISTORY = 10
REGRESSIONS_SHOWN = 10


def router_quality_page(request: HttpRequest, form: RouterQualityForm, status: int = 200) -> HttpResponse:
    runs = router_quality_runs(HISTORY)
    latest = next((run for run in runs if run.finished), None)
    context: dict[str, Any] = {
        "form": form,
        "runs": runs,
        "latest": latest,
        "top_model": top_tier_model(),
    }
    if latest is not None:
        comparison = latest.comparison()
        context["comparison"] = comparison
        context["regressions"] = [case for case in comparison.cases if case.change == Change.REGRESSED][
            :REGRESSIONS_SHOWN
        ]
    return render(request, "evals/router_quality.html", context, status=status)


@tenant_page
@require_http_methods(["GET", "POST"])
def router_quality(request: HttpRequest, access: PageAccess) -> HttpResponse:
    keys = inference_keys_of(access.tenant)
    if request.method == "GET":
        return router_quality_page(request, RouterQualityForm(keys=keys))
    access.require_manager()
    form = RouterQualityForm(request.POST, keys=keys)
    if form.is_valid():
        try:
            run = start_router_quality(form.cleaned_data["api_key"], form.cleaned_data["sample"])
        except RouterQualityError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request, f"Started both experiments on {run.version.cases.count()} sampled requests."
            )
            return redirect("evals:router-quality")
    return router_quality_page(request, form, status=400)
