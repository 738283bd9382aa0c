"""The comparison page: two experiments on one dataset side by side, case by case,
regressions first, with the paired test and the cost and latency deltas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from evals import selectors
from evals.models import CaseResult, Experiment
from evals.statistics import CaseChange, Change
from evals.web.forms import CompareForm
from tenants.web.base import PageAccess, tenant_page

CHOICES = 200
ROWS_PER_PAGE = 100


@dataclass(frozen=True)
class SideBySide:
    change: CaseChange
    baseline: CaseResult
    candidate: CaseResult


def side_by_side(baseline: Experiment, candidate: Experiment, changes: list[CaseChange]) -> list[SideBySide]:
    """Each compared case with both results, in the comparison's order (regressions first)."""
    found = CaseResult.objects.filter(
        experiment__in=[baseline, candidate], case__key__in=[change.key for change in changes]
    ).select_related("case")
    results = {(result.experiment_id, result.case.key): result for result in found}
    return [
        SideBySide(change, results[(baseline.pk, change.key)], results[(candidate.pk, change.key)])
        for change in changes
    ]


def experiments_offered() -> Any:
    return Experiment.objects.select_related("version__dataset").filter(aggregates__isnull=False)[:CHOICES]


def comparison_context(form: CompareForm, page_number: str | None) -> dict[str, Any]:
    """The comparison the form asks for, or the form's errors."""
    found = {
        experiment.pk: experiment
        for experiment in Experiment.objects.select_related("version__dataset").filter(
            pk__in=[form.cleaned_data["baseline"], form.cleaned_data["candidate"]]
        )
    }
    for field in ("baseline", "candidate"):
        if form.cleaned_data[field] not in found:
            form.add_error(field, f"No experiment {form.cleaned_data[field]}.")
    if form.errors:
        return {}
    baseline, candidate = found[form.cleaned_data["baseline"]], found[form.cleaned_data["candidate"]]
    try:
        comparison = selectors.compare(candidate=candidate, baseline=baseline)
    except selectors.ComparisonError as error:
        form.add_error(None, f"{error} Compare two experiments on one dataset: cases are matched by key.")
        return {}
    page = Paginator(comparison.cases, ROWS_PER_PAGE).get_page(page_number)
    return {
        "baseline": baseline,
        "candidate": candidate,
        "comparison": comparison,
        "improved": comparison.count(Change.IMPROVED),
        "unchanged": comparison.count(Change.UNCHANGED),
        "rows": side_by_side(baseline, candidate, list(page)),
        "page": page,
        "query": f"baseline={baseline.pk}&candidate={candidate.pk}&",
    }


@tenant_page
@require_GET
def compare(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The form alone until both experiments are named (a link may name one)."""
    context: dict[str, Any] = {"experiments": experiments_offered()}
    if not {"baseline", "candidate"} <= set(request.GET):
        context["form"] = CompareForm(initial=request.GET.dict())
        return render(request, "evals/compare.html", context)
    form = CompareForm({name: request.GET.get(name, "") for name in ("baseline", "candidate")})
    if form.is_valid():
        context.update(comparison_context(form, request.GET.get("page")))
    context["form"] = form
    return render(request, "evals/compare.html", context, status=400 if form.errors else 200)
