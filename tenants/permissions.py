from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenants.authentication import MissingApiKey
from tenants.models import ApiKey


class HasTenantApiKey(BasePermission):
    """A usable API key authenticated the request; views may require a scope."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            raise MissingApiKey()
        scope = getattr(view, "required_scope", None)
        return scope is None or request.auth.has_scope(scope)
