from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from tenants.models import ApiKey, ApiKeyScope


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    object = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "object",
            "id",
            "name",
            "prefix",
            "scopes",
            "allowed_models",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields

    def get_object(self, api_key: ApiKey) -> str:
        return "api_key"


class CreateApiKeySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        min_length=1,
        max_length=3,
        default=lambda: [ApiKeyScope.INFERENCE],
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=100,
        default=list,
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


class CreatedApiKeySerializer(ApiKeySerializer):
    api_key = serializers.CharField(help_text="The full key. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "api_key"]
        read_only_fields = fields
