"""drf-spectacular postprocessing hooks: the parts of the OpenAPI document it cannot see.

- `merge_v1_paths` adds the /v1 gateway (a Starlette app beside Django,
  docs/decisions/0005), described by hand in gateway/openapi_v1.yaml.
- `document_api_errors` adds the error responses every /api operation can give
  (aiaas/api_errors.py), which drf-spectacular leaves out: a client, and
  Schemathesis, must find every status code it may get in the document.

Both fail the generation rather than overwrite anything drf-spectacular made.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

V1_DESCRIPTION = Path(__file__).with_name("openapi_v1.yaml")
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch"})


@cache
def v1_description() -> dict[str, Any]:
    with V1_DESCRIPTION.open(encoding="utf-8") as file:
        description: dict[str, Any] = yaml.safe_load(file)
    return description


def merge_v1_paths(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add the /v1 paths and the components they use; a name clash is an error."""
    v1 = copy.deepcopy(v1_description())
    paths = result.setdefault("paths", {})
    for path, item in v1["paths"].items():
        if path in paths:
            raise ValueError(f"OpenAPI path {path} is described twice")
        paths[path] = item
    components = result.setdefault("components", {})
    for section, entries in v1["components"].items():
        existing = components.setdefault(section, {})
        for name, definition in entries.items():
            if name in existing and existing[name] != definition:
                raise ValueError(f"OpenAPI component {section}/{name} is defined twice")
            existing[name] = definition
    # Keep the components sorted, as drf-spectacular does, for a stable document.
    result["components"] = {
        section: dict(sorted(entries.items())) for section, entries in sorted(components.items())
    }
    return result


def api_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


def api_errors(path: str, method: str, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The error responses of one /api operation, by status code."""
    errors = {
        "401": api_error(
            "No API key (missing_api_key), or an unknown, revoked or expired one (invalid_api_key)."
        ),
        "403": api_error(
            "The key lacks the scope this operation needs, or the feature is off for this "
            "workspace (feature_disabled)."
        ),
        "429": api_error(
            "The key's or the organization's /api rate was reached (rate_limit_exceeded); "
            "Retry-After says when to retry."
        ),
    }
    if "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", [])):
        errors["400"] = api_error(
            "A field or query parameter is invalid (`param` names it), or the body cannot be read."
        )
    if "requestBody" in operation:
        errors["413"] = api_error("The body exceeds the size limit (request_too_large).")
    if "{" in path:
        errors["404"] = api_error("No such object for this tenant (another tenant's id answers the same).")
    return errors


def document_api_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add the OpenAI-shaped error responses to every /api operation (run after merge_v1_paths)."""
    if "Error" not in result.get("components", {}).get("schemas", {}):
        raise ValueError("the /api error responses use the Error schema of gateway/openapi_v1.yaml")
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in api_errors(path, method, operation).items():
                responses.setdefault(status, response)
            operation["responses"] = dict(sorted(responses.items()))
    return result
