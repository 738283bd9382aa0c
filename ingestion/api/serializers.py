from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer, StrictSerializer
from ingestion.models import Collection, Document


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
    }
)
class MetadataField(serializers.JSONField):
    """Flat attributes (at most 16; strings, numbers, booleans) search filters match.
    In a multipart upload, the same object as JSON text."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                raise serializers.ValidationError("must be a JSON object") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        return super().to_internal_value(data)


class CollectionSerializer(StrictModelSerializer[Collection]):
    object = serializers.SerializerMethodField()
    document_count = serializers.IntegerField(read_only=True, default=0)
    ready_count = serializers.IntegerField(read_only=True, default=0, help_text="Documents ready to search.")
    metadata = MetadataField()

    class Meta:
        model = Collection
        fields = [
            "object",
            "id",
            "name",
            "description",
            "embedding_model",
            "dimensions",
            "chunk_tokens",
            "chunk_overlap",
            "search_config",
            "metadata",
            "document_count",
            "ready_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, collection: Collection) -> str:
        return "collection"


class CreateCollectionSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    embedding_model = serializers.CharField(
        required=False,
        max_length=200,
        help_text="A registry model that makes embeddings (default: the platform's).",
    )
    chunk_tokens = serializers.IntegerField(required=False, help_text="Tokens per chunk at most.")
    chunk_overlap = serializers.IntegerField(required=False, help_text="Tokens shared by consecutive chunks.")
    search_config = serializers.CharField(
        required=False, max_length=63, help_text="The PostgreSQL text search configuration of keyword search."
    )
    metadata = MetadataField(required=False)


class UpdateCollectionSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    metadata = MetadataField(required=False)


class DocumentSerializer(StrictModelSerializer[Document]):
    object = serializers.SerializerMethodField()
    collection_id = serializers.CharField(read_only=True)
    file_id = serializers.CharField(read_only=True, allow_null=True)
    url = serializers.SerializerMethodField()
    metadata = MetadataField()

    class Meta:
        model = Document
        fields = [
            "object",
            "id",
            "collection_id",
            "title",
            "source",
            "url",
            "file_id",
            "content_type",
            "bytes",
            "status",
            "error",
            "chunks_done",
            "chunks_total",
            "chunk_count",
            "token_count",
            "generation",
            "attempts",
            "metadata",
            "stream_id",
            "usage_prompt_tokens",
            "usage_cost_usd",
            "created_at",
            "updated_at",
            "ingested_at",
        ]
        read_only_fields = fields

    def get_object(self, document: Document) -> str:
        return "document"

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_url(self, document: Document) -> str | None:
        """The source URL of a `url` document, null for the others."""
        return document.url or None


class DocumentsQuerySerializer(serializers.Serializer[Any]):
    collection_id = serializers.CharField(
        required=False, max_length=40, help_text="Only this collection's documents."
    )


class CreateDocumentSerializer(StrictSerializer):
    """JSON: exactly one of `text` and `url`. Multipart: a `file`."""

    text = serializers.CharField(required=False, trim_whitespace=False, help_text="Raw text or Markdown.")
    url = serializers.CharField(required=False, max_length=2000, help_text="An http(s) URL to fetch.")
    file = serializers.FileField(required=False, help_text="A file to upload (multipart/form-data).")
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    metadata = MetadataField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("text", "url", "file") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError("give exactly one of text, url or file", code="invalid_source")
        return attrs
