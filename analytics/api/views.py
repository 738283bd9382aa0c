from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import selectors
from analytics.api.serializers import (
    SummaryQuerySerializer,
    SummarySerializer,
    TimeseriesQuerySerializer,
    TimeseriesSerializer,
)
from analytics.backends.base import Query
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKey, ApiKeyScope


class AnalyticsViewSet(TenantScopedViewSet):
    """The tenant's KPIs from the analytics read model (never the raw ledger)."""

    required_scope = ApiKeyScope.READ

    def tenant_queryset(self) -> QuerySet[ApiKey]:
        # The tenant's keys: what a `key` filter given by prefix may name.
        return ApiKey.objects.all()

    def query(self, serializer_class: type[SummaryQuerySerializer]) -> Query:
        context: dict[str, Any] = {"tenant_id": self.tenant.pk, "keys": self.get_queryset()}
        serializer = serializer_class(data=self.request.query_params, context=context)
        serializer.is_valid(raise_exception=True)
        query: Query = serializer.validated_data["query"]
        return query

    @extend_schema(
        operation_id="analytics_summary", parameters=[SummaryQuerySerializer], responses=SummarySerializer
    )
    def summary(self, request: Request) -> Response:
        return Response(selectors.summary(self.query(SummaryQuerySerializer)))

    @extend_schema(
        operation_id="analytics_timeseries",
        parameters=[TimeseriesQuerySerializer],
        responses=TimeseriesSerializer,
    )
    def timeseries(self, request: Request) -> Response:
        return Response(selectors.timeseries(self.query(TimeseriesQuerySerializer)))
