from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from flags.api.serializers import EvaluatedFlagListSerializer
from flags.evaluation import evaluate_all
from tenants.api.base import TenantScopedViewSet


class FlagViewSet(TenantScopedViewSet):
    """The calling tenant's flags, evaluated as its requests are (no other tenant's)."""

    # Any usable key: a client asks which features its workspace may call.
    required_scope = None
    tenant_field = None  # evaluated from the cached table, nothing queried

    @extend_schema(operation_id="flags_list", responses=EvaluatedFlagListSerializer)
    def evaluated(self, request: Request) -> Response:
        data = [
            {"key": flag.key, "enabled": flag.enabled, "rule": flag.rule.value}
            for flag in evaluate_all(self.tenant)
        ]
        return Response(EvaluatedFlagListSerializer({"data": data}).data)
