"""Writes of stored responses, each inside the tenant's schema it is given: a
caller cannot write into whatever schema its connection last used."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from conversations.models import StoredResponse
from tenants.models import Tenant


def store_response(
    tenant: Tenant, api_key_id: int | None, input_items: list[dict[str, Any]], response: dict[str, Any]
) -> None:
    """Keep `response` (a Response object) and the items it answered, once per response id."""
    with tenant_context(tenant):
        StoredResponse.objects.update_or_create(
            response_id=response["id"],
            defaults={
                "api_key_id": api_key_id,
                "previous_response_id": response.get("previous_response_id") or "",
                "input_items": input_items,
                "response": response,
                "created_at": timezone.now(),
            },
        )


def delete_response(tenant: Tenant, response_id: str) -> bool:
    """Whether the tenant had a stored response `response_id` (it has none now)."""
    with tenant_context(tenant):
        deleted, _ = StoredResponse.objects.filter(response_id=response_id).delete()
    return deleted > 0
