from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.serializers import InvoicePreviewSerializer, UsageQuerySerializer, UsageReportSerializer
from billing.models import BillingAccount, UsageEvent
from billing.selectors import invoice_preview, usage_groups
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope


class UsageViewSet(TenantScopedViewSet):
    """The tenant's usage from the ledger: requests, tokens and cost per group."""

    required_scope = ApiKeyScope.READ
    serializer_class = UsageReportSerializer

    def tenant_queryset(self) -> QuerySet[UsageEvent]:
        return UsageEvent.objects.all()

    @extend_schema(operation_id="usage_report", parameters=[UsageQuerySerializer])
    def report(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period, group_by = query.validated_data["period"], query.validated_data["group_by"]
        report = {
            "object": "list",
            "groups": usage_groups(self.get_queryset(), period, group_by),
            "period": period,
            "group_by": group_by.value,
        }
        return Response(UsageReportSerializer(report).data)


class BillingPreviewViewSet(TenantScopedViewSet):
    """The current period's bill from our own ledger, and where the quota stands."""

    required_scope = ApiKeyScope.READ
    serializer_class = InvoicePreviewSerializer

    def tenant_queryset(self) -> QuerySet[BillingAccount]:
        return BillingAccount.objects.all()

    @extend_schema(operation_id="billing_preview")
    def preview(self, request: Request) -> Response:
        self.get_queryset()  # asserts the key's tenant is the active one
        return Response(InvoicePreviewSerializer(invoice_preview(self.tenant)).data)
