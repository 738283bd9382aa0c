"""The bases every /api serializer inherits: a request body naming a field the
serializer does not accept is refused with a 400 that names it.

Without this DRF drops unknown fields, so `{"rpm_limit": 5}` would create a key
with no limit and answer 201. Read-only fields are refused as well (code
`read_only_field`): a client sending one means to set it, and nothing would be
set. The OpenAPI document says the same: request bodies of these serializers
have `additionalProperties: false`, and their request components (split from the
response ones) leave read-only fields out.

Query parameters are not request bodies: query serializers inherit DRF's own
`Serializer`, and unknown parameters are ignored, as OpenAI's API does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db.models import Model
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

ModelT = TypeVar("ModelT", bound=Model)


# No docstrings on the bases: drf-spectacular would describe every subclass with them.
class StrictFieldsMixin:
    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            refuse_undeclared_fields(self.fields, data)
        return super().to_internal_value(data)  # type: ignore[misc]


def refuse_undeclared_fields(
    fields: Mapping[str, serializers.Field[Any, Any, Any, Any]], data: Mapping[str, Any]
) -> None:
    """A ValidationError on the first field of `data` that `fields` do not accept, naming the others."""
    accepted = ", ".join(sorted(name for name, field in fields.items() if not field.read_only)) or "none"
    unknown = [name for name in data if name not in fields]
    read_only = [name for name in data if name in fields and fields[name].read_only]
    for names, kind, code in (
        (unknown, "Unknown", "unknown_field"),
        (read_only, "Read-only", "read_only_field"),
    ):
        if names:
            others = f" (and {', '.join(names[1:])})" if len(names) > 1 else ""
            message = f"{kind} field{others}; this body accepts: {accepted}."
            raise serializers.ValidationError({names[0]: [ErrorDetail(message, code=code)]})


class StrictSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer[ModelT]):
    pass


class StrictSerializerSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """Request bodies of strict serializers: `additionalProperties: false`."""

    target_class = StrictFieldsMixin
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
