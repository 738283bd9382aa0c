"""The committed OpenAPI document (docs/openapi.yaml) as JSON Schema validators,
for tests that check real responses against it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from django.conf import settings

DOCUMENT = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def nullable_to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema: a typed schema gains the null type,
    any other (a `$ref` inside `allOf`, say) becomes "it or null"."""
    if isinstance(schema, list):
        return [nullable_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: nullable_to_json_schema(value) for key, value in schema.items() if key != "nullable"}
    if not schema.get("nullable"):
        return converted
    if "type" in schema:
        return {**converted, "type": [schema["type"], "null"]}
    return {"anyOf": [converted, {"type": "null"}]}


def response_validator(path: str, method: str, status: int = 200) -> jsonschema_rs.Validator:
    """A validator of the JSON body the document gives `method path` for `status`."""
    response = document()["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    components = nullable_to_json_schema(document()["components"])
    return jsonschema_rs.Draft4Validator({**nullable_to_json_schema(schema), "components": components})
