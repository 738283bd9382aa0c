"""The dashboard's experiment pages: the list with each dataset's pass-rate trend,
an experiment's aggregates and per-case results (with human labels that measure
the judge), live progress, and starting one.

Reading is for every member; what spends tokens (starting an experiment) and
what changes the record (labels) is for owners and admins.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evals import labels, selectors, services
from evals.agreement import judge_agreement
from evals.models import ACTIVE_EXPERIMENT_STATUSES, CaseResult, DatasetVersion, Experiment
from evals.web.forms import ExperimentForm, LabelForm
from evals.web.keys import inference_keys_of
from evals.web.trends import pass_rate_chart
from realtime.tokens import StreamTokenClaims, mint_stream_token_sync
from tenants.web.base import PageAccess, manager_page, tenant_page

PAGE_SIZE = 50
TREND_DAYS = 30
BASELINE_CHOICES = 200
# The per-case table's views: every result, those that failed, those nobody labelled yet.
RESULT_FILTERS: dict[str, dict[str, Any]] = {
    "all": {},
    "failed": {"passed": False},
    "unlabelled": {"human_label__isnull": True},
}


def experiments_with_versions() -> Any:
    return Experiment.objects.select_related("version__dataset")


@tenant_page
@require_GET
def experiment_list(request: HttpRequest, access: PageAccess) -> HttpResponse:
    experiments = Paginator(experiments_with_versions(), PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    finished = experiments_with_versions().filter(
        finished_at__gte=now - timedelta(days=TREND_DAYS), aggregates__isnull=False
    )
    context = {"experiments": experiments, "trend": pass_rate_chart(finished, now, TREND_DAYS)}
    return render(request, "evals/experiments.html", context)


def progress_of(experiment: Experiment) -> dict[str, Any]:
    counts = selectors.counts(experiment)
    return {
        "id": experiment.pk,
        "status": experiment.status,
        "done": counts.done,
        "total": counts.total,
        "passed": counts.passed,
        "errors": counts.errors,
        "live": experiment.status in ACTIVE_EXPERIMENT_STATUSES,
    }


@tenant_page
@require_GET
def experiment_progress(request: HttpRequest, access: PageAccess, pk: str) -> JsonResponse:
    """How far the experiment is, from the database (the truth the stream announces)."""
    return JsonResponse(progress_of(get_object_or_404(experiments_with_versions(), pk=pk)))


@tenant_page
@never_cache
@require_POST
def experiment_stream_token(request: HttpRequest, access: PageAccess, pk: str) -> JsonResponse:
    """A single-use token for the experiment's progress stream, from this origin only,
    acting as the key the experiment is billed to."""
    experiment = get_object_or_404(Experiment, pk=pk)
    api_key = next((key for key in inference_keys_of(access.tenant) if key.pk == experiment.api_key_id), None)
    if api_key is None or not experiment.stream_id:
        return JsonResponse(
            {"error": {"message": "This experiment's progress has no stream to follow."}}, status=409
        )
    claims = StreamTokenClaims(
        tenant_id=access.tenant.pk,
        schema_name=access.tenant.schema_name,
        api_key_id=api_key.pk,
        purpose="streams",
        stream_id=experiment.stream_id,
        origin=f"{request.scheme}://{request.get_host()}".lower(),
        page_checked=True,
    )
    return JsonResponse(mint_stream_token_sync(claims))


def experiment_page(
    request: HttpRequest, experiment: Experiment, status: int = 200, label_form: LabelForm | None = None
) -> HttpResponse:
    show = request.GET.get("show", "all")
    results = experiment.results.filter(**RESULT_FILTERS.get(show, {})).select_related("case")
    judge = judge_of(experiment)
    context: dict[str, Any] = {
        "experiment": experiment,
        "aggregates": experiment.aggregates or {},
        "progress": progress_of(experiment),
        "show": show if show in RESULT_FILTERS else "all",
        "show_query": f"show={show}&" if show in RESULT_FILTERS else "",
        "results": Paginator(results.order_by("case__position"), PAGE_SIZE).get_page(request.GET.get("page")),
        "label_form": label_form or LabelForm(),
        "judge": judge,
        "agreement": judge_agreement(experiment, judge),
    }
    return render(request, "evals/experiment.html", context, status=status)


def judge_of(experiment: Experiment) -> str | None:
    """The name of the experiment's first LLM judge, whose verdicts people's labels
    measure; None (the case verdict is measured) when it has none."""
    for spec in experiment.scorers:
        if isinstance(spec, dict) and spec.get("type") == "llm_judge":
            return str(spec.get("name", "llm_judge"))
    return None


@tenant_page
@require_GET
def experiment_detail(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    return experiment_page(request, get_object_or_404(experiments_with_versions(), pk=pk))


@manager_page
@require_POST
def result_label(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    """A person's pass/fail verdict on one output (or none, to clear it)."""
    result = get_object_or_404(CaseResult.objects.select_related("experiment__version__dataset"), pk=pk)
    form = LabelForm(request.POST)
    if not form.is_valid():
        return experiment_page(request, result.experiment, 400, label_form=form)
    labels.set_human_label(result, form.human_label())
    page, show = form.cleaned_data["page"] or 1, form.cleaned_data["show"] or "all"
    detail = reverse("evals:experiment", args=[result.experiment_id])
    return redirect(f"{detail}?show={show}&page={page}#result-{result.pk}")


def new_experiment_page(request: HttpRequest, form: ExperimentForm, status: int = 200) -> HttpResponse:
    return render(request, "evals/experiment_new.html", {"form": form}, status=status)


def versions_offered() -> Any:
    return DatasetVersion.objects.select_related("dataset").order_by("dataset__name", "-version")


def baselines_offered() -> Any:
    """The latest finished experiments, as a queryset a form can still filter to validate."""
    latest = Experiment.objects.filter(aggregates__isnull=False).values("pk")[:BASELINE_CHOICES]
    return experiments_with_versions().filter(pk__in=latest)


@manager_page
@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """Start an experiment: a dataset version, a target, scorers, and the key it is billed to."""
    keys = inference_keys_of(access.tenant)
    if request.method == "GET":
        initial = {"version": request.GET.get("version")}
        return new_experiment_page(
            request,
            ExperimentForm(
                initial=initial, keys=keys, versions=versions_offered(), baselines=baselines_offered()
            ),
        )
    form = ExperimentForm(request.POST, keys=keys, versions=versions_offered(), baselines=baselines_offered())
    if form.is_valid():
        try:
            experiment = start_experiment(form.cleaned_data)
        except services.ExperimentInputError as error:
            field = error.param.split(".")[0]
            form.add_error(field if field in form.fields else None, error.message)
        else:
            return redirect("evals:experiment", pk=experiment.pk)
    return new_experiment_page(request, form, status=400)


def start_experiment(cleaned: dict[str, Any]) -> Experiment:
    return services.create_experiment(
        version=cleaned["version"],
        target_kind=cleaned["target_kind"],
        target=cleaned["target"],
        scorers=cleaned["scorers"],
        concurrency=cleaned["concurrency"],
        api_key=cleaned["api_key"],
        name=cleaned["name"],
        baseline=cleaned["baseline"],
    )


@manager_page
@require_POST
def experiment_cancel(request: HttpRequest, access: PageAccess, pk: str) -> HttpResponse:
    experiment = get_object_or_404(Experiment, pk=pk)
    services.cancel_experiment(experiment)
    messages.success(request, "Cancelled: the cases that finished are kept.")
    return redirect("evals:experiment", pk=experiment.pk)
