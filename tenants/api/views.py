from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api.base import TenantScopedViewSet
from tenants.api.idempotency import idempotent
from tenants.api.serializers import (
    ApiKeySerializer,
    CreateApiKeySerializer,
    CreatedApiKeySerializer,
    TenantSettingsSerializer,
    UpdateApiKeySerializer,
)
from tenants.models import ApiKey, ApiKeyScope, Tenant
from tenants.services import (
    create_api_key,
    revoke_api_key,
    set_cors_allowed_origins,
    set_outbound_policy,
    update_api_key,
)


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The tenant's API keys. Only keys with the admin scope may manage keys."""

    required_scope = ApiKeyScope.ADMIN
    serializer_class = ApiKeySerializer
    lookup_value_regex = r"[0-9]+"

    def tenant_queryset(self) -> QuerySet[ApiKey]:
        return ApiKey.objects.all()

    @extend_schema(request=CreateApiKeySerializer, responses={201: CreatedApiKeySerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        form = CreateApiKeySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        issued = create_api_key(self.tenant, created_by=f"key:{self.api_key.prefix}", **form.validated_data)
        data: dict[str, Any] = {**ApiKeySerializer(issued.api_key).data, "api_key": issued.secret}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UpdateApiKeySerializer, responses={200: ApiKeySerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        """Rename a key, or change its priority or limit overrides (null: back to the plan's)."""
        api_key = self.get_object()
        form = UpdateApiKeySerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        return Response(ApiKeySerializer(update_api_key(api_key, form.validated_data)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        revoke_api_key(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantSettingsViewSet(TenantScopedViewSet):
    """The tenant's own settings: the origins allowed to call the API from a browser
    (CORS), and where its tools and URL ingestion may send requests."""

    required_scope = ApiKeyScope.ADMIN
    serializer_class = TenantSettingsSerializer
    tenant_field = None  # the queryset is the tenant itself

    def tenant_queryset(self) -> QuerySet[Tenant]:
        return Tenant.objects.filter(pk=self.tenant.pk)

    @extend_schema(operation_id="tenant_settings_retrieve")
    def retrieve(self, request: Request) -> Response:
        return Response(TenantSettingsSerializer(self.get_queryset().get()).data)

    @extend_schema(operation_id="tenant_settings_update")
    def partial_update(self, request: Request) -> Response:
        form = TenantSettingsSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        tenant = self.get_queryset().get()
        if {"outbound_allowed_hosts", "outbound_allowed_ports"} & form.validated_data.keys():
            try:
                tenant = set_outbound_policy(
                    tenant,
                    hosts=form.validated_data.get("outbound_allowed_hosts", tenant.outbound_allowed_hosts),
                    ports=form.validated_data.get("outbound_allowed_ports", tenant.outbound_allowed_ports),
                )
            except DjangoValidationError as error:
                raise ValidationError(error.message_dict) from None
        if "cors_allowed_origins" in form.validated_data:
            tenant = set_cors_allowed_origins(tenant, form.validated_data["cors_allowed_origins"])
        return Response(TenantSettingsSerializer(tenant).data)
