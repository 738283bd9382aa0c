"""The API gate: a view naming `required_flag` answers 403 `feature_disabled` to a
tenant that has the flag off. tenants/api/base.py applies it to every tenant view."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from flags import is_enabled
from tenants.models import Tenant


class FeatureDisabled(exceptions.PermissionDenied):
    default_detail = "This feature is not enabled for this workspace."
    default_code = "feature_disabled"


class RequiredFlagEnabled(BasePermission):
    """After the key's own checks: the view's `required_flag`, if any, is on for its tenant."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key: str | None = getattr(view, "required_flag", None)
        if key is None:
            return True
        tenant = getattr(request._request, "tenant", None)
        if not isinstance(tenant, Tenant) or not is_enabled(key, tenant):
            raise FeatureDisabled(f"The {key!r} feature is not enabled for this workspace.")
        return True
