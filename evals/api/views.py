from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from aiaas.api_parsers import JSONParser
from evals import datasets, gate, golden, selectors
from evals.agreement import judge_agreement
from evals.api.serializers import (
    KEY_REGEX,
    AgreementQuerySerializer,
    AgreementSerializer,
    CaseListSerializer,
    CaseSerializer,
    CasesQuerySerializer,
    CompareQuerySerializer,
    ComparisonSerializer,
    CreateCaseSerializer,
    CreateDatasetSerializer,
    CreateExperimentSerializer,
    CreateVersionSerializer,
    DatasetSerializer,
    ExperimentSerializer,
    ExperimentsQuerySerializer,
    ExportQuerySerializer,
    FromRequestLogsSerializer,
    FromRunsSerializer,
    GateReportSerializer,
    GateSerializer,
    GoldenSuiteListSerializer,
    ImportSerializer,
    LabelSerializer,
    ResultListSerializer,
    ResultSerializer,
    ResultsQuerySerializer,
    UpdateCaseSerializer,
    UpdateDatasetSerializer,
    VersionQuerySerializer,
    VersionSerializer,
)
from evals.datasets import DatasetInputError, FileFormat, ImportMode
from evals.labels import set_human_label
from evals.models import ACTIVE_EXPERIMENT_STATUSES, Dataset, DatasetVersion, Experiment
from evals.selectors import ComparisonError
from evals.services import ExperimentInputError, cancel_experiment, create_experiment
from ingestion.api.pagination import CreatedAtPagination
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope

# Experiment ids (`exp_...`); anything else is simply not found.
ID_PATTERN = r"[A-Za-z0-9_-]{1,40}"
EXPORT_TYPES = {FileFormat.JSONL: "application/jsonl", FileFormat.CSV: "text/csv"}


def api_error(error: DatasetInputError) -> APIException:
    if error.status == status.HTTP_400_BAD_REQUEST:
        detail = {error.param: [error.message]} if error.param else [error.message]
        return ValidationError(detail, code=error.code)
    refusal = APIException(error.message, code=error.code)
    refusal.status_code = error.status
    return refusal


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's eval datasets: versioned cases. Admin keys only (cases are the
    tenant's content). Edits go to the latest version, or to a new one when an
    experiment has used it."""

    required_scope = ApiKeyScope.ADMIN
    required_flag = "evals"
    tenant_field = None  # Dataset lives in the tenant's schema: the schema is the boundary.
    serializer_class = DatasetSerializer
    lookup_value_regex = r"[0-9]+"

    def tenant_queryset(self) -> QuerySet[Dataset]:
        return datasets.datasets_list()

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DatasetInputError):
            exc = api_error(exc)
        return super().handle_exception(exc)

    def represent(self, dataset: Dataset) -> dict[str, Any]:
        data: dict[str, Any] = DatasetSerializer(self.get_queryset().get(pk=dataset.pk)).data
        return data

    @extend_schema(
        request=CreateDatasetSerializer,
        responses={201: DatasetSerializer},
        description="Create a dataset with an empty version 1, or copy a golden suite by its name.",
    )
    def create(self, request: Request) -> Response:
        form = CreateDatasetSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        dataset = golden.create_dataset_named(
            data.pop("name"), data.pop("description"), data.pop("assertions", None), data, self.api_key.pk
        )
        return Response(self.represent(dataset), status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateDatasetSerializer, responses={200: DatasetSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        """The description and the nightly run's settings."""
        dataset = self.get_object()
        form = UpdateDatasetSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        datasets.update_dataset(dataset, form.validated_data, self.api_key.pk)
        return Response(self.represent(dataset))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the dataset with its versions, experiments and results (409 while one runs)."""
        datasets.delete_dataset(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: GoldenSuiteListSerializer})
    @action(detail=False, methods=["get"], url_path="golden", url_name="golden")
    def golden_suites(self, request: Request) -> Response:
        """The golden suites shipped with the product, and the tenant's copy of each once made."""
        copies = dict(Dataset.objects.filter(name__in=golden.suites()).values_list("name", "pk"))
        data = [
            {
                "name": suite.name,
                "description": suite.description,
                "case_count": len(suite.cases()),
                "output_format": suite.output_format,
                "dataset_id": copies.get(suite.name),
            }
            for suite in golden.suites().values()
        ]
        return Response({"object": "list", "data": data})

    @extend_schema(methods=["get"], responses={200: VersionSerializer(many=True)})
    @extend_schema(
        methods=["post"],
        request=CreateVersionSerializer,
        responses={201: VersionSerializer},
        description="A new version with the latest one's cases (and new assertions when given).",
    )
    @action(detail=True, methods=["get", "post"], serializer_class=VersionSerializer)
    def versions(self, request: Request, pk: str) -> Response:
        dataset = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(datasets.versions_list(dataset))
            return self.get_paginated_response(VersionSerializer(page, many=True).data)
        form = CreateVersionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = datasets.new_version(dataset, form.validated_data.get("assertions"))
        return Response(self.represent_version(version), status=status.HTTP_201_CREATED)

    def represent_version(self, version: DatasetVersion) -> dict[str, Any]:
        annotated = datasets.versions_list(version.dataset).get(pk=version.pk)
        data: dict[str, Any] = VersionSerializer(annotated).data
        return data

    @extend_schema(methods=["get"], parameters=[CasesQuerySerializer], responses={200: CaseListSerializer})
    @extend_schema(
        methods=["post"],
        request=CreateCaseSerializer,
        responses={201: CaseSerializer},
        description="Add a case to the latest version (to a new version when an experiment used it).",
    )
    @action(detail=True, methods=["get", "post"])
    def cases(self, request: Request, pk: str) -> Response:
        dataset = self.get_object()
        if request.method == "GET":
            return Response(self.cases_page(dataset, request))
        form = CreateCaseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = datasets.case_from_fields(form.validated_data)
        version = datasets.add_cases(dataset, [case])
        stored = version.cases.select_related("version").get(key=case.key)
        return Response(CaseSerializer(stored).data, status=status.HTTP_201_CREATED)

    def cases_page(self, dataset: Dataset, request: Request) -> dict[str, Any]:
        query = CasesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        version = datasets.version_of(dataset, query.validated_data.get("version"))
        limit = query.validated_data["limit"]
        cases = version.cases.select_related("version").filter(position__gt=query.validated_data["after"])
        page = list(cases.order_by("position")[: limit + 1])
        data = CaseSerializer(page[:limit], many=True).data
        return {"object": "list", "version": version.version, "data": data, "has_more": len(page) > limit}

    @extend_schema(
        methods=["get"],
        parameters=[VersionQuerySerializer],
        responses={200: CaseSerializer},
        operation_id="v1_datasets_case_retrieve",
    )
    @extend_schema(
        methods=["patch"],
        operation_id="v1_datasets_case_partial_update",
        request=UpdateCaseSerializer,
        responses={200: CaseSerializer},
        description="Change the case in the latest version (in a new version when an experiment used it).",
    )
    @extend_schema(
        methods=["delete"],
        operation_id="v1_datasets_case_destroy",
        responses={200: VersionSerializer},
        description="Remove the case from the latest version (from a new version when an experiment "
        "used it); the answer is that version.",
    )
    @action(
        detail=True,
        methods=["get", "patch", "delete"],
        url_path=f"cases/(?P<key>{KEY_REGEX.strip('^$')})",
        url_name="case-detail",
    )
    def case_detail(self, request: Request, pk: str, key: str) -> Response:
        dataset = self.get_object()
        if request.method == "GET":
            query = VersionQuerySerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
            version = datasets.version_of(dataset, query.validated_data.get("version"))
            return Response(CaseSerializer(datasets.case_of(version, key)).data)
        if request.method == "DELETE":
            return Response(self.represent_version(datasets.delete_case(dataset, key)))
        form = UpdateCaseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return Response(CaseSerializer(datasets.update_case(dataset, key, form.validated_data)).data)

    @extend_schema(
        request={"multipart/form-data": ImportSerializer, "application/json": ImportSerializer},
        responses={200: VersionSerializer},
        description="Import cases from JSON Lines or CSV (docs/evals.md): appended to the latest version, "
        "or replacing its cases; a bad line is a 400 naming its number.",
    )
    @action(
        detail=True,
        methods=["post"],
        parser_classes=[JSONParser, MultiPartParser],
        url_path="import",
        url_name="import",
    )
    def import_cases(self, request: Request, pk: str) -> Response:
        dataset = self.get_object()
        form = ImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data.get("file")
        if upload is not None:
            content = upload.read()
            file_format = FileFormat(data.get("file_format") or format_of(upload.name or ""))
        else:
            content = data["content"].encode()
            file_format = FileFormat(data.get("file_format") or FileFormat.JSONL)
        version = datasets.import_cases(dataset, content, file_format, ImportMode(data["mode"]))
        return Response(self.represent_version(version))

    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses={
            (200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR, description="One case per line."),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="A header row, one case per row."
            ),
        },
        description="The version's cases as a file that imports back to the same cases.",
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> HttpResponse:
        dataset = self.get_object()
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        version = datasets.version_of(dataset, query.validated_data.get("version"))
        file_format = FileFormat(query.validated_data["file_format"])
        response = HttpResponse(
            datasets.export_cases(version, file_format), content_type=EXPORT_TYPES[file_format]
        )
        filename = f"{dataset.name}-v{version.version}.{file_format}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(
        request=FromRequestLogsSerializer,
        responses={200: VersionSerializer},
        description="Add one case per logged request (request logging must be on): its messages as input, "
        "its answer as `expected`.",
    )
    @action(detail=True, methods=["post"], url_path="from-request-logs")
    def from_request_logs(self, request: Request, pk: str) -> Response:
        dataset = self.get_object()
        form = FromRequestLogsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        cases = datasets.cases_from_request_logs(form.validated_data["request_ids"])
        return Response(self.represent_version(datasets.add_cases(dataset, cases)))

    @extend_schema(
        request=FromRunsSerializer,
        responses={200: VersionSerializer},
        description="Add one case per succeeded agent run: its input as `agent_input`, its output "
        "as `expected`.",
    )
    @action(detail=True, methods=["post"], url_path="from-runs")
    def from_runs(self, request: Request, pk: str) -> Response:
        dataset = self.get_object()
        form = FromRunsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        cases = datasets.cases_from_runs(form.validated_data["run_ids"])
        return Response(self.represent_version(datasets.add_cases(dataset, cases)))


def format_of(filename: str) -> FileFormat:
    suffix = PurePosixPath(filename).suffix.lower()
    return FileFormat.CSV if suffix == ".csv" else FileFormat.JSONL


class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's experiments: runs of a dataset version against a target, newest first,
    with their aggregates, results, comparisons and the deploy gate. Admin keys only."""

    required_scope = ApiKeyScope.ADMIN
    required_flag = "evals"
    tenant_field = None  # Experiment lives in the tenant's schema.
    serializer_class = ExperimentSerializer
    pagination_class = CreatedAtPagination
    lookup_value_regex = ID_PATTERN

    def tenant_queryset(self) -> QuerySet[Experiment]:
        return Experiment.objects.select_related("version__dataset")

    @extend_schema(parameters=[ExperimentsQuerySerializer])
    def list(self, request: Request) -> Response:
        """Newest first; `dataset` and `schedule` narrow the list (a pass-rate trend)."""
        query = ExperimentsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        experiments = self.get_queryset()
        if "dataset" in query.validated_data:
            experiments = experiments.filter(version__dataset_id=query.validated_data["dataset"])
        if "schedule" in query.validated_data:
            experiments = experiments.filter(schedule=query.validated_data["schedule"])
        page = self.paginate_queryset(experiments)
        return self.get_paginated_response(ExperimentSerializer(page, many=True).data)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DatasetInputError):
            exc = api_error(exc)
        elif isinstance(exc, ExperimentInputError):
            exc = ValidationError({exc.param: [exc.message]}, code="invalid_experiment")
        elif isinstance(exc, ComparisonError):
            exc = ValidationError({"baseline": [str(exc)]}, code="not_comparable")
        return super().handle_exception(exc)

    def represent(self, experiment: Experiment) -> dict[str, Any]:
        data: dict[str, Any] = ExperimentSerializer(self.get_queryset().get(pk=experiment.pk)).data
        return data

    @extend_schema(
        request=CreateExperimentSerializer,
        responses={201: ExperimentSerializer},
        description="Start an experiment (queued on the evals queue); its version is locked from now on. "
        "Follow `status`, or its `stream_id` for progress.",
    )
    def create(self, request: Request) -> Response:
        form = CreateExperimentSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        dataset = Dataset.objects.filter(pk=data["dataset"]).first()
        if dataset is None:
            raise DatasetInputError(f"No dataset {data['dataset']}.", param="dataset", code="not_found")
        experiment = create_experiment(
            datasets.version_of(dataset, data.get("version")),
            data["target_kind"],
            data["target"],
            data.get("scorers", []),
            data["concurrency"],
            self.api_key,
            name=data["name"],
            baseline=self.other(data["baseline"]) if "baseline" in data else None,
        )
        return Response(self.represent(experiment), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ExperimentSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Stop the experiment; the cases done keep their results and the aggregates count them."""
        return Response(self.represent(cancel_experiment(self.get_object())))

    @extend_schema(parameters=[ResultsQuerySerializer], responses={200: ResultListSerializer})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str) -> Response:
        """The results in case order: `after` a case position, at most `limit`, optionally only
        the passed (or failed) ones."""
        experiment = self.get_object()
        query = ResultsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = query.validated_data
        results = experiment.results.select_related("case").filter(case__position__gt=options["after"])
        if options["passed"] is not None:
            results = results.filter(passed=options["passed"])
        page = list(results.order_by("case__position")[: options["limit"] + 1])
        data = ResultSerializer(page[: options["limit"]], many=True).data
        return Response({"object": "list", "data": data, "has_more": len(page) > options["limit"]})

    @extend_schema(
        request=LabelSerializer,
        responses={200: ResultSerializer},
        description="Label a result as a person judged it (pass or fail): the LLM judge's agreement "
        "with these labels is measured.",
    )
    @action(
        detail=True,
        methods=["patch"],
        url_path=f"results/(?P<key>{KEY_REGEX.strip('^$')})",
        url_name="result-detail",
    )
    def result_detail(self, request: Request, pk: str, key: str) -> Response:
        experiment = self.get_object()
        form = LabelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = experiment.results.select_related("case").filter(case__key=key).first()
        if result is None:
            raise NotFound(f"No result for the case `{key}`.")
        return Response(ResultSerializer(set_human_label(result, form.validated_data["human_label"])).data)

    @extend_schema(parameters=[AgreementQuerySerializer], responses={200: AgreementSerializer})
    @action(detail=True, methods=["get"])
    def agreement(self, request: Request, pk: str) -> Response:
        """How far the judge can be trusted: its verdicts against the human labels of this
        experiment's results (Cohen's kappa, raw agreement, the confusion matrix)."""
        experiment = self.get_object()
        query = AgreementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        scorer = query.validated_data.get("scorer")
        agreement = judge_agreement(experiment, scorer)
        return Response({"object": "experiment.agreement", "scorer": scorer, **agreement.as_json()})

    @extend_schema(parameters=[CompareQuerySerializer], responses={200: ComparisonSerializer})
    @action(detail=True, methods=["get"])
    def compare(self, request: Request, pk: str) -> Response:
        """This experiment against `baseline` (same dataset), case by case by key: regressions,
        improvements, the exact McNemar test and the deltas with 95% paired bootstrap intervals."""
        experiment = self.get_object()
        query = CompareQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        baseline = self.other(query.validated_data["baseline"])
        comparison = selectors.compare(experiment, baseline)
        return Response(gate.comparison_json(experiment, baseline, comparison))

    @extend_schema(
        request=GateSerializer,
        responses={200: GateReportSerializer},
        description="The deploy gate, as `manage.py eval_gate` decides it: `passed` is false when the "
        "experiment did not succeed, its pass rate is below `min_pass_rate`, or more than "
        "`max_regressions` cases regressed against `baseline`. 409 while the experiment runs.",
    )
    @action(detail=True, methods=["post"])
    def gate(self, request: Request, pk: str) -> Response:
        experiment = self.get_object()
        form = GateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if experiment.status in ACTIVE_EXPERIMENT_STATUSES:
            raise DatasetInputError(
                f"The experiment is still {experiment.status}.", code="not_finished", status=409
            )
        baseline = self.other(data["baseline"]) if "baseline" in data else None
        rule = gate.GateRule(data.get("min_pass_rate"), data.get("max_regressions"))
        return Response(gate.gate_report(experiment, baseline, rule))

    def other(self, experiment_id: str) -> Experiment:
        """Another experiment of this tenant, named in a parameter (a 400 if there is none)."""
        found: Experiment | None = self.get_queryset().filter(pk=experiment_id).first()
        if found is None:
            raise ValidationError({"baseline": [f"No experiment `{experiment_id}`."]}, code="not_found")
        return found
