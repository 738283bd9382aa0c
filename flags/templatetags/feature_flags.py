"""`{% load feature_flags %}` ... `{% if request.tenant|feature_enabled:"agents" %}`."""

from __future__ import annotations

from django import template

from flags import is_enabled
from tenants.models import Tenant

register = template.Library()


@register.filter
def feature_enabled(tenant: object, key: str) -> bool:
    return isinstance(tenant, Tenant) and is_enabled(key, tenant)
