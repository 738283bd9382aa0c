from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins

from request_logs.api.serializers import RequestLogSerializer
from request_logs.models import RequestLog
from tenants.api.base import TenantScopedViewSet
from tenants.models import ApiKeyScope


class RequestLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's stored requests (prompts and outputs), newest first. Admin keys
    only: prompts are sensitive. Empty unless the tenant turned request logging on."""

    required_scope = ApiKeyScope.ADMIN
    # RequestLog lives in the tenant's schema: the schema is the boundary.
    tenant_field = None
    serializer_class = RequestLogSerializer
    lookup_value_regex = r"[0-9]+"

    def tenant_queryset(self) -> QuerySet[RequestLog]:
        return RequestLog.objects.all()
