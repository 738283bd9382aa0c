"""Reads of stored responses, each inside the tenant's schema it is given."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import tenant_context

from conversations.models import StoredResponse
from tenants.models import Tenant


def stored_response(tenant: Tenant, response_id: str) -> StoredResponse | None:
    with tenant_context(tenant):
        return StoredResponse.objects.filter(response_id=response_id).first()


def conversation_after(tenant: Tenant, response_id: str) -> list[dict[str, Any]] | None:
    """Every item of the conversation up to and including response `response_id`'s
    answer (what a next turn continues), or None when the tenant stores no such response."""
    stored = stored_response(tenant, response_id)
    if stored is None:
        return None
    return [*stored.input_items, *stored.response.get("output", [])]
