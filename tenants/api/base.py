"""The one base for API views over tenant data. It fails closed.

Authentication (API key), permission (usable key + `required_scope`, then
`required_flag`) and the per-key and per-tenant throttle (tenants/api/throttling.py)
are fixed here, and `get_queryset` is final: a subclass supplies
`tenant_queryset()` and the base adds the tenant filter for public-schema
models. Subclasses that try to override those raise TypeError at import.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from django.http import QueryDict
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.viewsets import GenericViewSet

from flags.api.permissions import RequiredFlagEnabled
from tenants.api.pagination import OpenAIListPagination
from tenants.api.throttling import ApiRateThrottle
from tenants.authentication import ApiKeyAuthentication
from tenants.context import current_schema_name
from tenants.models import ApiKey, Tenant
from tenants.permissions import HasTenantApiKey

FINAL_ATTRIBUTES = (
    "get_queryset",
    "authentication_classes",
    "permission_classes",
    "initial",
    "check_permissions",
    "throttle_classes",
    "check_throttles",
)


class TenantScopedViewSet(GenericViewSet):  # type: ignore[type-arg]
    authentication_classes = (ApiKeyAuthentication,)
    permission_classes = (HasTenantApiKey, RequiredFlagEnabled)
    throttle_classes = (ApiRateThrottle,)
    pagination_class = OpenAIListPagination
    # Scope the key must carry; "admin" keys carry every scope.
    required_scope: ClassVar[str | None] = None
    # Feature flag the tenant must have on (flags/), else 403 `feature_disabled`.
    required_flag: ClassVar[str | None] = None
    # Field naming the tenant on public-schema models; None for models in the
    # tenant's own schema, where the schema itself is the boundary.
    tenant_field: ClassVar[str | None] = "tenant"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in FINAL_ATTRIBUTES:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {name}: tenant scoping is final")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        refuse_nul_characters(request.query_params)

    @property
    def tenant(self) -> Tenant:
        tenant = getattr(self.request._request, "tenant", None)
        if not isinstance(tenant, Tenant) or current_schema_name() != tenant.schema_name:
            raise RuntimeError("no tenant context: refusing to run a tenant query")
        return tenant

    @property
    def api_key(self) -> ApiKey:
        assert isinstance(self.request.auth, ApiKey)
        return self.request.auth

    def tenant_queryset(self) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        queryset = self.tenant_queryset()
        if self.tenant_field is not None:
            queryset = queryset.filter(**{self.tenant_field: self.tenant})
        else:
            self.tenant  # noqa: B018 - asserts the tenant schema is active
        return queryset


def refuse_nul_characters(params: QueryDict) -> None:
    """A query parameter holding a NUL is a 400 naming it: PostgreSQL's text cannot hold
    one, so a filter or cursor on it was a 500."""
    for name, values in params.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            raise ValidationError(
                {name: ["Null characters are not allowed."]}, code="null_characters_not_allowed"
            )
