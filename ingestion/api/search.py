"""POST /api/v1/collections/{id}/search: the REST face of ingestion.search."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from aiaas.api_serializers import StrictSerializer
from gateway.errors import GatewayError
from ingestion.models import Collection
from ingestion.search import (
    MAX_DOCUMENT_IDS,
    MAX_QUERY_CHARS,
    MAX_TOP_K,
    SearchInputError,
    SearchMode,
    search,
)
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "nullable": True},
                {"type": "number"},
                {"type": "boolean"},
                {
                    "type": "object",
                    "properties": {"$in": {"type": "array", "items": {}}},
                    "required": ["$in"],
                    "additionalProperties": False,
                },
            ]
        },
        "example": {"lang": "en", "tag": {"$in": ["guide", "faq"]}},
    }
)
class FiltersField(serializers.JSONField):
    """Metadata filters: a value (equality) or `{"$in": [values]}` per metadata key."""


class SearchRequestSerializer(StrictSerializer):
    query = serializers.CharField(max_length=MAX_QUERY_CHARS)
    top_k = serializers.IntegerField(min_value=1, max_value=MAX_TOP_K, default=10)
    mode = serializers.ChoiceField(choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value)
    filters = FiltersField(
        required=False, default=dict, help_text="Matched against each document's metadata, exactly."
    )
    document_ids = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=MAX_DOCUMENT_IDS,
        help_text="Search only these documents of the collection.",
    )

    def validate_filters(self, value: object) -> dict[str, object]:
        if not isinstance(value, dict):
            raise ValidationError("Filters must be a JSON object.")
        return value


class SearchHitSerializer(serializers.Serializer[Any]):
    document_id = serializers.CharField()
    document_title = serializers.CharField()
    chunk_id = serializers.IntegerField()
    text = serializers.CharField()
    position = serializers.IntegerField(help_text="0-based order of the chunk in its document.")
    heading = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    score = serializers.FloatField(
        help_text="hybrid: reciprocal rank fusion (k=60); vector: cosine similarity; keyword: ts_rank_cd."
    )
    vector_rank = serializers.IntegerField(allow_null=True)
    vector_score = serializers.FloatField(allow_null=True)
    keyword_rank = serializers.IntegerField(allow_null=True)
    keyword_score = serializers.FloatField(allow_null=True)


class SearchUsageSerializer(serializers.Serializer[Any]):
    model = serializers.CharField(allow_null=True, help_text="The model that embedded the query.")
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class SearchResponseSerializer(serializers.Serializer[Any]):
    object = serializers.CharField(default="list")
    data = SearchHitSerializer(many=True)  # type: ignore[assignment]
    usage = SearchUsageSerializer()
    mode = serializers.ChoiceField(choices=[mode.value for mode in SearchMode])


class EmbeddingFailed(APIException):
    """The gateway refused or failed to embed the query (a limit, the budget, the provider)."""

    def __init__(self, error: GatewayError) -> None:
        self.status_code = error.status
        super().__init__(error.message, error.code or error.type)


class CollectionSearchViewSet(TenantScopedViewSet):
    """Search a collection's chunks. Read keys may search; the query's embedding is
    attributed to the key (limits, budget and usage ledger apply)."""

    required_scope = ApiKeyScope.READ
    required_flag = "ingestion"
    tenant_field = None  # Collection lives in the tenant's schema: the schema is the boundary.
    serializer_class = SearchRequestSerializer

    def tenant_queryset(self) -> QuerySet[Collection]:
        return Collection.objects.all()

    @extend_schema(
        operation_id="collection_search",
        request=SearchRequestSerializer,
        responses={200: SearchResponseSerializer},
        description="The best chunks for `query`: `hybrid` (default) fuses vector and keyword ranks "
        "(reciprocal rank fusion, k=60); `vector` ranks by cosine similarity; `keyword` by PostgreSQL "
        "full-text rank (no model call).",
    )
    def search(self, request: Request, pk: str) -> Response:
        collection = self.get_object()
        form = SearchRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        try:
            result = search(
                collection,
                data["query"],
                top_k=data["top_k"],
                mode=data["mode"],
                filters=data["filters"],
                document_ids=data.get("document_ids"),
                api_key=self.api_key,
            )
        except SearchInputError as error:
            raise ValidationError({error.param: [error.message]}, code="invalid_search") from None
        except GatewayError as error:
            raise EmbeddingFailed(error) from None
        usage = result.usage
        return Response(
            {
                "object": "list",
                "data": [asdict(hit) for hit in result.hits],
                "usage": {
                    "model": usage.model,
                    "prompt_tokens": usage.prompt_tokens,
                    "total_tokens": usage.prompt_tokens,
                },
                "mode": result.mode.value,
            }
        )
