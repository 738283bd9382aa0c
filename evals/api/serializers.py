from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer, StrictSerializer
from evals.datasets import FileFormat, ImportMode
from evals.models import Case, CaseResult, Dataset, DatasetVersion, Experiment, TargetKind

KEY_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
EXPERIMENT_ID_REGEX = r"^exp_[0-9a-f]{24}$"
MAX_PICKED = 500  # request logs or runs turned into cases by one call


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    """A JSON object (OpenAPI would otherwise say "any value")."""


@extend_schema_field({"type": "array", "items": {"type": "object", "additionalProperties": True}})
class SpecListField(serializers.JSONField):
    """Scorer specs: `[{"type": "contains", "value": "refund"}, ...]` (docs/evals.md)."""


@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": True}],
        "description": 'Chat messages (`{"messages": [...]}`), prompt variables (`{"variables": {...}}`), '
        'an agent input (`{"agent_input": ...}`), or a string: one user message.',
    }
)
class CaseInputField(serializers.JSONField):
    pass


@extend_schema_field({"description": "Any JSON value: the reference answer scorers may compare with."})
class AnyJsonField(serializers.JSONField):
    pass


class DatasetSerializer(StrictModelSerializer[Dataset]):
    object = serializers.SerializerMethodField()
    latest_version = serializers.IntegerField(read_only=True)
    case_count = serializers.IntegerField(read_only=True, help_text="Cases of the latest version.")
    locked = serializers.SerializerMethodField()
    nightly_model = serializers.SerializerMethodField()
    alert_webhook_url = serializers.SerializerMethodField()
    alert_email = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "object",
            "id",
            "name",
            "description",
            "latest_version",
            "case_count",
            "locked",
            "nightly_model",
            "alert_webhook_url",
            "alert_email",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, dataset: Dataset) -> str:
        return "dataset"

    def get_locked(self, dataset: Dataset) -> bool:
        """Whether an experiment used the latest version: editing it makes the next one."""
        return getattr(dataset, "latest_locked_at", None) is not None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_nightly_model(self, dataset: Dataset) -> str | None:
        """The model the nightly run uses; null: no nightly run."""
        return dataset.nightly_model or None

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_alert_webhook_url(self, dataset: Dataset) -> str | None:
        return dataset.alert_webhook_url or None

    @extend_schema_field({"type": "string", "format": "email", "nullable": True})
    def get_alert_email(self, dataset: Dataset) -> str | None:
        return dataset.alert_email or None


class NightlySettingsSerializer(StrictSerializer):
    nightly_model = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Run the dataset against this model every night (empty: no nightly run).",
    )
    alert_webhook_url = serializers.URLField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="POSTed a JSON alert when a nightly run regresses (public http(s) hosts only).",
    )
    alert_email = serializers.EmailField(
        required=False, allow_blank=True, help_text="Emailed when a nightly run regresses."
    )


class CreateDatasetSerializer(NightlySettingsSerializer):
    name = serializers.SlugField(
        max_length=100, help_text="A golden suite's name (`golden-faq`, ...) copies that suite."
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    assertions = SpecListField(required=False, help_text="Scorers of every case of version 1.")


class UpdateDatasetSerializer(NightlySettingsSerializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class VersionSerializer(StrictModelSerializer[DatasetVersion]):
    object = serializers.SerializerMethodField()
    dataset_id = serializers.IntegerField(read_only=True)
    assertions = SpecListField(read_only=True)
    case_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "object",
            "id",
            "dataset_id",
            "version",
            "assertions",
            "case_count",
            "locked_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_object(self, version: DatasetVersion) -> str:
        return "dataset.version"


class CreateVersionSerializer(StrictSerializer):
    assertions = SpecListField(required=False, help_text="The new version's (the latest's when left out).")


class CaseSerializer(StrictModelSerializer[Case]):
    object = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="version.version", read_only=True)
    input = ObjectField(read_only=True)
    expected = AnyJsonField(read_only=True, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    assertions = SpecListField(read_only=True)

    class Meta:
        model = Case
        fields = ["object", "key", "version", "position", "input", "expected", "tags", "assertions", "source"]
        read_only_fields = fields

    def get_object(self, case: Case) -> str:
        return "dataset.case"


class CreateCaseSerializer(StrictSerializer):
    key = serializers.RegexField(
        KEY_REGEX, required=False, help_text="Stable across versions (made from the input when left out)."
    )
    input = CaseInputField()
    expected = AnyJsonField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    assertions = SpecListField(required=False)


class UpdateCaseSerializer(StrictSerializer):
    input = CaseInputField(required=False)
    expected = AnyJsonField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    assertions = SpecListField(required=False)


class CasesQuerySerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="A version number (default: the latest)."
    )
    after = serializers.IntegerField(
        default=0, min_value=0, max_value=2**31 - 1, help_text="Cases after this position."
    )
    limit = serializers.IntegerField(default=100, min_value=1, max_value=1000)


class CaseListSerializer(StrictSerializer):
    object = serializers.CharField(default="list")
    version = serializers.IntegerField()
    data = CaseSerializer(many=True)  # type: ignore[assignment]
    has_more = serializers.BooleanField()


class VersionQuerySerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="A version number (default: the latest)."
    )


class ExportQuerySerializer(VersionQuerySerializer):
    file_format = serializers.ChoiceField(
        choices=[f.value for f in FileFormat], required=False, help_text="jsonl (the default) or csv."
    )
    format = serializers.ChoiceField(
        choices=[f.value for f in FileFormat],
        required=False,
        help_text="The same as `file_format`, as the dashboard's export links name it.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        named = {attrs[name] for name in ("file_format", "format") if name in attrs}
        if len(named) > 1:
            raise serializers.ValidationError({"format": ["differs from `file_format`; send one of them."]})
        return {**attrs, "file_format": named.pop() if named else FileFormat.JSONL.value}


class ImportSerializer(StrictSerializer):
    """A `file` (multipart), or its text as `content` (JSON)."""

    file = serializers.FileField(required=False, help_text="A .jsonl or .csv file.")
    content = serializers.CharField(required=False, trim_whitespace=False, help_text="The file's text.")
    file_format = serializers.ChoiceField(
        choices=[f.value for f in FileFormat],
        required=False,
        help_text="jsonl or csv (default: from the file's name; jsonl for `content`).",
    )
    mode = serializers.ChoiceField(
        choices=[m.value for m in ImportMode],
        default=ImportMode.APPEND.value,
        help_text="append: add the cases; replace: the version holds exactly the file's cases.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs.get("file") is None) == (attrs.get("content") is None):
            raise serializers.ValidationError("give exactly one of file or content", code="invalid_source")
        return attrs


class FromRequestLogsSerializer(StrictSerializer):
    request_ids = serializers.ListField(
        child=serializers.CharField(max_length=128), min_length=1, max_length=MAX_PICKED
    )


class FromRunsSerializer(StrictSerializer):
    run_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), min_length=1, max_length=MAX_PICKED
    )


class GoldenSuiteSerializer(StrictSerializer):
    name = serializers.CharField()
    description = serializers.CharField()
    case_count = serializers.IntegerField()
    output_format = ObjectField(help_text="The JSON Schema of the answer each case asks for.")
    dataset_id = serializers.IntegerField(
        allow_null=True, help_text="The tenant's copy, once made (POST /api/v1/datasets with the name)."
    )


class GoldenSuiteListSerializer(StrictSerializer):
    object = serializers.CharField(default="list")
    data = GoldenSuiteSerializer(many=True)  # type: ignore[assignment]


AGGREGATES_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "Written when the experiment ends (and on cancel): pass rate and mean score with "
    "their 95% bootstrap intervals, cost, latency percentiles.",
    "properties": {
        "n": {"type": "integer"},
        "passed": {"type": "integer"},
        "errors": {"type": "integer"},
        "pass_rate": {"type": "number", "nullable": True},
        "ci_low": {"type": "number", "nullable": True},
        "ci_high": {"type": "number", "nullable": True},
        "mean_score": {"type": "number", "nullable": True},
        "score_ci_low": {"type": "number", "nullable": True},
        "score_ci_high": {"type": "number", "nullable": True},
        "cost_usd": {"type": "string"},
        "latency_ms": {
            "type": "object",
            "properties": {
                "p50": {"type": "number", "nullable": True},
                "p95": {"type": "number", "nullable": True},
            },
        },
    },
}


@extend_schema_field(AGGREGATES_SCHEMA)
class AggregatesField(serializers.JSONField):
    pass


class ExperimentSerializer(StrictModelSerializer[Experiment]):
    object = serializers.SerializerMethodField()
    dataset_id = serializers.IntegerField(source="version.dataset_id", read_only=True)
    dataset_name = serializers.CharField(source="version.dataset.name", read_only=True)
    dataset_version = serializers.IntegerField(source="version.version", read_only=True)
    baseline_id = serializers.CharField(read_only=True, allow_null=True)
    target = ObjectField(read_only=True)
    scorers = SpecListField(read_only=True)
    aggregates = AggregatesField(read_only=True, allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=8, read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "object",
            "id",
            "name",
            "dataset_id",
            "dataset_name",
            "dataset_version",
            "baseline_id",
            "target_kind",
            "target",
            "scorers",
            "concurrency",
            "status",
            "error",
            "aggregates",
            "cost_usd",
            "stream_id",
            "schedule",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_object(self, experiment: Experiment) -> str:
        return "experiment"


class CreateExperimentSerializer(StrictSerializer):
    dataset = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The dataset's id.")
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Its version (default: the latest)."
    )
    target_kind = serializers.ChoiceField(choices=TargetKind.choices)
    target = ObjectField(
        help_text='model: {"model", "quality_target"?, "params"?}; prompt: {"prompt", "prompt_version"?, '
        '"model", "params"?}; agent: {"agent", "agent_version"?} (docs/evals.md).'
    )
    scorers = SpecListField(required=False, help_text="Besides the version's and cases' assertions.")
    concurrency = serializers.IntegerField(required=False, default=4, min_value=1, max_value=32)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    baseline = serializers.RegexField(
        EXPERIMENT_ID_REGEX,
        required=False,
        help_text="An experiment whose outputs pairwise judges compare this one's with, case by case.",
    )


class ScoreSerializer(StrictSerializer):
    scorer = serializers.CharField()
    score = serializers.FloatField()
    passed = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)


class ResultSerializer(StrictModelSerializer[CaseResult]):
    object = serializers.SerializerMethodField()
    key = serializers.CharField(source="case.key", read_only=True)
    position = serializers.IntegerField(source="case.position", read_only=True)
    output = AnyJsonField(read_only=True, allow_null=True)
    scores = ScoreSerializer(many=True, read_only=True)
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=8, read_only=True)
    request_ids = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = CaseResult
        fields = [
            "object",
            "key",
            "position",
            "status",
            "output",
            "error",
            "scores",
            "passed",
            "score",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "request_ids",
            "human_label",
            "created_at",
        ]
        read_only_fields = fields

    def get_object(self, result: CaseResult) -> str:
        return "experiment.result"


class ResultsQuerySerializer(serializers.Serializer[Any]):
    after = serializers.IntegerField(
        default=0, min_value=0, max_value=2**31 - 1, help_text="Results of cases after this position."
    )
    limit = serializers.IntegerField(default=100, min_value=1, max_value=1000)
    passed = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="Only these.")


class ResultListSerializer(StrictSerializer):
    object = serializers.CharField(default="list")
    data = ResultSerializer(many=True)  # type: ignore[assignment]
    has_more = serializers.BooleanField()


class LabelSerializer(StrictSerializer):
    human_label = serializers.BooleanField(
        allow_null=True, help_text="A person's verdict on the output (null clears it)."
    )


class CompareQuerySerializer(serializers.Serializer[Any]):
    baseline = serializers.RegexField(EXPERIMENT_ID_REGEX, help_text="An experiment of the same dataset.")


class GateSerializer(StrictSerializer):
    baseline = serializers.RegexField(
        EXPERIMENT_ID_REGEX, required=False, help_text="An experiment to compare with."
    )
    min_pass_rate = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_regressions = serializers.IntegerField(
        required=False, min_value=0, help_text="Default 0 when a baseline is given."
    )


class CaseDeltaSerializer(StrictSerializer):
    passed = serializers.BooleanField()
    score = serializers.FloatField()


class CaseChangeSerializer(StrictSerializer):
    key = serializers.CharField()
    change = serializers.ChoiceField(choices=["regressed", "improved", "unchanged"])
    baseline = CaseDeltaSerializer()
    experiment = CaseDeltaSerializer()


class ComparisonSerializer(StrictSerializer):
    object = serializers.CharField(default="experiment.comparison")
    experiment = serializers.CharField()
    baseline = serializers.CharField()
    regressed = serializers.IntegerField()
    improved = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    only_in_baseline = serializers.ListField(child=serializers.CharField())
    only_in_experiment = serializers.ListField(child=serializers.CharField())
    mcnemar_p = serializers.FloatField(help_text="Exact McNemar test of the pass/fail flips.")
    significant = serializers.BooleanField(help_text="mcnemar_p < 0.05.")
    pass_rate_delta = serializers.FloatField(allow_null=True)
    pass_rate_delta_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    mean_score_delta = serializers.FloatField(allow_null=True)
    mean_score_delta_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    cost_delta_usd = serializers.CharField()
    latency_p50_delta_ms = serializers.FloatField(allow_null=True)
    latency_p95_delta_ms = serializers.FloatField(allow_null=True)
    cases = CaseChangeSerializer(many=True, help_text="The changed cases, regressions first.")


class GateReportSerializer(StrictSerializer):
    suite = serializers.CharField(help_text="The dataset's name.")
    dataset_version = serializers.IntegerField()
    experiment = serializers.CharField()
    status = serializers.CharField()
    baseline = serializers.CharField(allow_null=True)
    n = serializers.IntegerField()
    errored = serializers.IntegerField(help_text="Cases the target gave no answer to (any fails the gate).")
    pass_rate = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    cost_usd = serializers.CharField()
    regressions = serializers.IntegerField(allow_null=True)
    regressed_cases = serializers.ListField(child=serializers.CharField())
    mcnemar_p = serializers.FloatField(allow_null=True)
    min_pass_rate = serializers.FloatField(allow_null=True)
    max_regressions = serializers.IntegerField(allow_null=True)
    passed = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class AgreementQuerySerializer(serializers.Serializer[Any]):
    scorer = serializers.CharField(
        required=False, max_length=200, help_text="One scorer's name (default: the case verdicts)."
    )


class AgreementSerializer(StrictSerializer):
    object = serializers.CharField(default="experiment.agreement")
    scorer = serializers.CharField(allow_null=True)
    n = serializers.IntegerField(help_text="Labelled results the scorer judged.")
    raw_agreement = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True, help_text="Cohen's kappa.")
    band = serializers.CharField(help_text="Landis & Koch's word for kappa.")
    both_passed = serializers.IntegerField()
    both_failed = serializers.IntegerField()
    judge_passed_person_failed = serializers.IntegerField()
    judge_failed_person_passed = serializers.IntegerField()


class ExperimentsQuerySerializer(serializers.Serializer[Any]):
    dataset = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only this dataset's experiments."
    )
    schedule = serializers.ChoiceField(
        choices=["nightly"], required=False, help_text="Only the nightly runs."
    )
