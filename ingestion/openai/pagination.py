"""OpenAI's cursor pages over objects with string ids: `limit`, `order` (by
`created_at`, `desc` by default), `after` and `before` (an object id of the list).

Ties on `created_at` are broken by id, so a cursor never skips or repeats an object.
A cursor that is not in the list (deleted since) gives an empty last page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

ModelT = TypeVar("ModelT", bound=Model)


@dataclass(frozen=True, slots=True)
class PageSize:
    default: int
    maximum: int


VECTOR_STORE_PAGES = PageSize(default=20, maximum=100)
FILE_PAGES = PageSize(default=10_000, maximum=10_000)


def limit_of(request: Request, size: PageSize) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return size.default
    if not raw.isdigit() or not 1 <= int(raw) <= size.maximum:
        raise ValidationError(
            {"limit": [f"must be an integer from 1 to {size.maximum}"]}, code="invalid_value"
        )
    return int(raw)


def descending(request: Request) -> bool:
    order = request.query_params.get("order", "desc")
    if order not in {"asc", "desc"}:
        raise ValidationError({"order": ["must be `asc` or `desc`"]}, code="invalid_value")
    return order == "desc"


def beyond(
    queryset: QuerySet[ModelT], request: Request, name: str, *, later: bool, id_field: str
) -> QuerySet[ModelT]:
    """The objects past the cursor `name`: later or earlier by (created_at, pk)."""
    cursor_id = request.query_params.get(name)
    if cursor_id is None:
        return queryset
    cursor = queryset.filter(**{id_field: cursor_id}).values("created_at", "pk").first()
    if cursor is None:
        return queryset.none()  # gone since the last page (deleted): nothing follows it
    moment, key = cursor["created_at"], cursor["pk"]
    if later:
        return queryset.filter(Q(created_at__gt=moment) | Q(created_at=moment, pk__gt=key))
    return queryset.filter(Q(created_at__lt=moment) | Q(created_at=moment, pk__lt=key))


NEWEST_FIRST = ("-created_at", "-pk")
OLDEST_FIRST = ("created_at", "pk")


def cursor_page(
    queryset: QuerySet[ModelT],
    request: Request,
    size: PageSize,
    render: Callable[[ModelT], dict[str, Any]],
    id_field: str = "pk",
) -> dict[str, Any]:
    """One page in OpenAI's list shape: {object, data, first_id, last_id, has_more};
    `id_field` is what the list's ids (and so its cursors) are."""
    limit = limit_of(request, size)
    newest_first = descending(request)
    # In a newest-first list, "after" a cursor means older than it.
    queryset = beyond(queryset, request, "after", later=not newest_first, id_field=id_field)
    queryset = beyond(queryset, request, "before", later=newest_first, id_field=id_field)
    order, reverse = (NEWEST_FIRST, OLDEST_FIRST) if newest_first else (OLDEST_FIRST, NEWEST_FIRST)
    # `before`: the `limit` objects nearest the cursor, then put in the list's order.
    backwards = "before" in request.query_params
    rows = list(queryset.order_by(*(reverse if backwards else order))[: limit + 1])
    objects = rows[:limit][::-1] if backwards else rows[:limit]
    data = [render(obj) for obj in objects]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rows) > limit,
    }
