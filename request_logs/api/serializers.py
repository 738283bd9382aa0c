from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer
from request_logs.models import RequestLog


@extend_schema_field({"type": "object", "additionalProperties": True})
class RequestBodyField(serializers.JSONField):
    """A JSON object (OpenAPI would otherwise say "any value")."""


class RequestLogSerializer(StrictModelSerializer[RequestLog]):
    object = serializers.SerializerMethodField()
    request_body = RequestBodyField(
        read_only=True,
        help_text=(
            "The request as received (messages, parameters). Over 256 KiB of JSON it reads "
            '{"truncated": true, "original_bytes": N, "head": "<the start of its JSON text>"}.'
        ),
    )
    response_text = serializers.CharField(
        read_only=True,
        help_text=(
            "The answer's text, or the error body. Over 256 KiB it is cut, ending in "
            '"[truncated: N of M bytes omitted]".'
        ),
    )

    class Meta:
        model = RequestLog
        fields = [
            "object",
            "id",
            "request_id",
            "api_key_id",
            "model",
            "status",
            "request_body",
            "response_text",
            "created_at",
        ]
        read_only_fields = fields

    def get_object(self, request_log: Any) -> str:
        return "request_log"
