"""OpenAI's list shape: {"object": "list", "data", "first_id", "last_id", "has_more"}.

Newest first by id; `?limit=` (1-100, default 20) and `?after=<id>` page on.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_ID = 2**63 - 1  # a bigint primary key


def integer_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"must be an integer from {low} to {high}"]}) from None
    if not low <= value <= high:
        raise ValidationError({name: [f"must be an integer from {low} to {high}"]})
    return value


class OpenAIListPagination(BasePagination):
    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any]:
        limit = integer_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        after = integer_param(request, "after", None, 1, MAX_ID)
        queryset = queryset.order_by("-id")
        if after is not None:
            queryset = queryset.filter(id__lt=after)
        assert limit is not None
        page = list(queryset[: limit + 1])
        self.has_more = len(page) > limit
        return page[:limit]

    # The type of the listed objects' ids, in the OpenAPI document.
    id_schema: ClassVar[dict[str, Any]] = {"type": "integer"}
    after_schema: ClassVar[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": self.has_more,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["object", "data", "first_id", "last_id", "has_more"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": schema,
                "first_id": {**self.id_schema, "nullable": True},
                "last_id": {**self.id_schema, "nullable": True},
                "has_more": {"type": "boolean"},
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "Return objects older than this id.",
                "schema": self.after_schema,
            },
        ]
