from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer, StrictSerializer
from evals.datasets import FileFormat, ImportMode
from evals.models import Case, Dataset, DatasetVersion

KEY_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
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
    # Not `format`: DRF reads that query parameter as the renderer to use.
    file_format = serializers.ChoiceField(
        choices=[f.value for f in FileFormat], default=FileFormat.JSONL.value
    )


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
