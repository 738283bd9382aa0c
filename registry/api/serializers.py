from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aiaas.api_serializers import StrictModelSerializer, StrictSerializer
from registry.models import Entry
from registry.prompts import MAX_TEMPLATE_CHARACTERS


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    """A JSON object (OpenAPI would otherwise say "any value")."""


class PromptSerializer(StrictModelSerializer[Entry]):
    object = serializers.SerializerMethodField()
    template = serializers.SerializerMethodField()
    variables = serializers.SerializerMethodField()
    signed = serializers.SerializerMethodField()

    class Meta:
        model = Entry
        fields = ["object", "id", "name", "version", "template", "variables", "state", "signed", "created_at"]
        read_only_fields = fields

    def get_object(self, entry: Entry) -> str:
        return "prompt"

    def get_template(self, entry: Entry) -> str:
        return str(entry.manifest["template"])

    def get_variables(self, entry: Entry) -> list[str]:
        return list(entry.manifest["variables"])

    def get_signed(self, entry: Entry) -> bool:
        return entry.is_signed


class CreatePromptSerializer(StrictSerializer):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", help_text="Versions share a name.")
    template = serializers.CharField(
        max_length=MAX_TEMPLATE_CHARACTERS, trim_whitespace=False, help_text="A Jinja template (sandboxed)."
    )


class RenderPromptSerializer(StrictSerializer):
    variables = ObjectField(default=dict, help_text="The values of the template's variables.")

    def validate_variables(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object of the template's variables.")
        return value


class RenderedPromptSerializer(StrictSerializer):
    object = serializers.CharField(default="prompt.rendering")
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    text = serializers.CharField()
