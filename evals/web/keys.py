from __future__ import annotations

from accounts.selectors import active_api_keys_of
from tenants.models import ApiKey, ApiKeyScope, Tenant


def inference_keys_of(tenant: Tenant) -> list[ApiKey]:
    """The keys an experiment's calls can be billed to."""
    keys = active_api_keys_of(tenant).order_by("name")
    return [key for key in keys if key.has_scope(ApiKeyScope.INFERENCE)]
