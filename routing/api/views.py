from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from routing.api.serializers import (
    RoutingReportQuerySerializer,
    RoutingReportSerializer,
    RoutingSettingsSerializer,
)
from routing.models import TenantRouting
from routing.router.report import routing_report
from routing.router.services import tenant_routing, update_settings
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope


class RoutingReportViewSet(TenantScopedViewSet):
    """How `auto` routed the tenant's requests: tier mix, escalations, predicted vs
    actual failure, money saved against the top tier, decision latency, the canary."""

    required_scope = ApiKeyScope.READ
    serializer_class = RoutingReportSerializer

    def tenant_queryset(self) -> QuerySet[TenantRouting]:
        return TenantRouting.objects.all()

    @extend_schema(operation_id="routing_report", parameters=[RoutingReportQuerySerializer])
    def report(self, request: Request) -> Response:
        query = RoutingReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            RoutingReportSerializer(routing_report(self.tenant.pk, query.validated_data["days"])).data
        )


class RoutingSettingsViewSet(TenantScopedViewSet):
    """The tenant's quality target and exploration rate (canaries are started by staff)."""

    required_scope = ApiKeyScope.ADMIN
    serializer_class = RoutingSettingsSerializer

    def tenant_queryset(self) -> QuerySet[TenantRouting]:
        return TenantRouting.objects.all()

    @extend_schema(operation_id="routing_settings_retrieve")
    def retrieve(self, request: Request) -> Response:
        return Response(RoutingSettingsSerializer(tenant_routing(self.tenant.pk)).data)

    @extend_schema(operation_id="routing_settings_update")
    def partial_update(self, request: Request) -> Response:
        serializer = RoutingSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        routing = update_settings(self.tenant.pk, **serializer.validated_data)
        return Response(RoutingSettingsSerializer(routing).data)
