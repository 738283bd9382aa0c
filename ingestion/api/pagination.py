"""OpenAI's list shape for string ids: newest first, `?limit=` (1-100, default 20),
`?after=<id>` pages on after that object (by creation time, then id)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from tenants.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, OpenAIListPagination, integer_param


class CreatedAtPagination(OpenAIListPagination):
    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any]:
        limit = integer_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        assert limit is not None
        queryset = queryset.order_by("-created_at", "-id")
        after = request.query_params.get("after")
        if after is not None:
            anchor = queryset.filter(pk=after).values_list("created_at", flat=True).first()
            if anchor is None:
                raise ValidationError({"after": ["no such object in this list"]})
            queryset = queryset.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, id__lt=after))
        page = list(queryset[: limit + 1])
        self.has_more = len(page) > limit
        return page[:limit]
