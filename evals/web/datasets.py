"""The dashboard's dataset pages: the list, and per dataset its versions, its cases
page by page, import and export, and cases made from real traffic.

Reading is for every member; creating and importing is for owners and admins.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agents.models import Run, RunStatus
from evals import datasets, golden
from evals.models import Case, Dataset, DatasetVersion, Experiment
from evals.traffic import whole_chat_requests
from evals.web.forms import DatasetForm, ImportForm, TrafficForm
from request_logs.models import RequestLog
from tenants.web.base import PageAccess, manager_page, tenant_page

CASES_PAGE_SIZE = 50
TRAFFIC_PICKS = 50
DATASET_EXPERIMENTS = 20
EXPORT_FORMATS = frozenset(file_format.value for file_format in datasets.FileFormat)


def datasets_listed() -> Any:
    return Dataset.objects.annotate(
        latest_version=Max("versions__version"), experiment_count=Count("versions__experiments")
    )


def dataset_list_page(
    request: HttpRequest, form: DatasetForm | None = None, status: int = 200
) -> HttpResponse:
    listed = list(datasets_listed())
    names = {dataset.name for dataset in listed}
    context = {
        "datasets": listed,
        "suites": [suite for name, suite in sorted(golden.suites().items()) if name not in names],
        "form": form or DatasetForm(),
    }
    return render(request, "evals/datasets.html", context, status=status)


@tenant_page
@require_GET
def dataset_list(request: HttpRequest, access: PageAccess) -> HttpResponse:
    return dataset_list_page(request)


# ASCII digits within an integer column (str.isdigit also takes '²', which int() refuses).
VERSION_NUMBER = re.compile(r"[0-9]{1,9}")


def chosen_version(dataset: Dataset, number: str | None) -> DatasetVersion | None:
    """The version the page shows: the one asked for, or the latest."""
    versions = dataset.versions.all()
    if number and VERSION_NUMBER.fullmatch(number):
        return get_object_or_404(versions, version=int(number))
    return versions.order_by("-version").first()


def dataset_page(
    request: HttpRequest, dataset: Dataset, status: int = 200, import_form: ImportForm | None = None
) -> HttpResponse:
    version = chosen_version(dataset, request.GET.get("version"))
    cases = version.cases.order_by("position") if version else Case.objects.none()
    context: dict[str, Any] = {
        "dataset": dataset,
        "versions": dataset.versions.annotate(case_count=Count("cases", distinct=True)).order_by("-version"),
        "version": version,
        "cases": Paginator(cases, CASES_PAGE_SIZE).get_page(request.GET.get("page")),
        "import_form": import_form or ImportForm(),
        "version_query": f"version={version.version}&" if version else "",
        "experiments": Experiment.objects.filter(version__dataset=dataset).select_related("version__dataset")[
            :DATASET_EXPERIMENTS
        ],
    }
    return render(request, "evals/dataset.html", context, status=status)


@tenant_page
@require_GET
def dataset_detail(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    return dataset_page(request, get_object_or_404(Dataset, pk=pk))


@manager_page
@require_POST
def dataset_create(request: HttpRequest, access: PageAccess) -> HttpResponse:
    form = DatasetForm(request.POST)
    if form.is_valid():
        try:
            dataset = datasets.create_dataset(form.cleaned_data["name"], form.cleaned_data["description"])
        except datasets.DatasetInputError as error:
            form.add_error("name" if error.param == "name" else None, error.message)
        else:
            return redirect("evals:dataset", pk=dataset.pk)
    return dataset_list_page(request, form, status=400)


@manager_page
@require_POST
def golden_suite_use(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The tenant's copy of a shipped suite, made now if it has none."""
    try:
        dataset, _ = golden.golden_dataset(request.POST.get("name", ""))
    except datasets.DatasetInputError as error:
        messages.error(request, error.message)
        return dataset_list_page(request, status=400)
    return redirect("evals:dataset", pk=dataset.pk)


@manager_page
@require_POST
def dataset_import(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=pk)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            version = datasets.import_cases(
                dataset,
                # One byte past the bound is enough for the service to refuse the file.
                upload.read(settings.EVALS_IMPORT_MAX_BYTES + 1),
                datasets.FileFormat(form.cleaned_data["format"]),
                datasets.ImportMode(form.cleaned_data["mode"]),
            )
        except datasets.DatasetInputError as error:
            form.add_error("file", error.message)
        else:
            messages.success(request, f"Imported {upload.name} into v{version.version}.")
            return redirect(f"{reverse('evals:dataset', args=[dataset.pk])}?version={version.version}")
    return dataset_page(request, dataset, status=400, import_form=form)


@tenant_page
@require_GET
def dataset_export(request: HttpRequest, access: PageAccess, pk: int) -> HttpResponse:
    """A version's cases as a file that imports back to the same cases."""
    dataset = get_object_or_404(Dataset, pk=pk)
    version = chosen_version(dataset, request.GET.get("version"))
    file_format = request.GET.get("format", datasets.FileFormat.JSONL)
    if version is None or file_format not in EXPORT_FORMATS:
        return HttpResponseBadRequest("Export a version of the dataset as format=jsonl or format=csv.")
    content_type = "application/jsonl" if file_format == datasets.FileFormat.JSONL else "text/csv"
    response = HttpResponse(
        datasets.export_cases(version, datasets.FileFormat(file_format)),
        content_type=f"{content_type}; charset=utf-8",
    )
    filename = f"{dataset.name}-v{version.version}.{file_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def recent_traffic() -> tuple[list[RequestLog], list[Run]]:
    """What a person can pick from: the latest whole chat requests and succeeded runs."""
    logs = list(whole_chat_requests()[:TRAFFIC_PICKS])
    runs = list(Run.objects.filter(status=RunStatus.SUCCEEDED).order_by("-created_at", "-id")[:TRAFFIC_PICKS])
    return logs, runs


def traffic_page(request: HttpRequest, form: TrafficForm | None, status: int = 200) -> HttpResponse:
    logs, runs = recent_traffic()
    if form is None:
        form = TrafficForm(
            initial={"dataset": request.GET.get("dataset", "")},
            request_ids=[log.request_id for log in logs],
            run_ids=[run.pk for run in runs],
        )
    context = {"form": form, "logs": logs, "runs": runs}
    return render(request, "evals/from_traffic.html", context, status=status)


@tenant_page
@require_http_methods(["GET", "POST"])
def dataset_from_traffic(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """Picked requests and runs become cases of a new version of a dataset (created if new)."""
    if request.method == "GET":
        return traffic_page(request, None)
    access.require_manager()
    logs, runs = recent_traffic()
    form = TrafficForm(
        request.POST, request_ids=[log.request_id for log in logs], run_ids=[run.pk for run in runs]
    )
    if form.is_valid():
        try:
            version = add_traffic_cases(form.cleaned_data)
        except datasets.DatasetInputError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Added {version.cases.count()} cases in v{version.version}.")
            return redirect(
                f"{reverse('evals:dataset', args=[version.dataset_id])}?version={version.version}"
            )
    return traffic_page(request, form, status=400)


def add_traffic_cases(cleaned: dict[str, Any]) -> DatasetVersion:
    """The picked cases added to the named dataset, made now if new: both or neither."""
    cases = datasets.cases_from_request_logs(cleaned["request_ids"])
    cases += datasets.cases_from_runs(int(run_id) for run_id in cleaned["run_ids"])
    with transaction.atomic():
        dataset = Dataset.objects.filter(name=cleaned["dataset"]).first()
        if dataset is None:
            dataset = datasets.create_dataset(cleaned["dataset"], "Cases picked from real traffic.")
        return datasets.add_cases(dataset, cases)
