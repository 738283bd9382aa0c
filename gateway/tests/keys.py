"""Keys of a tenant made for one test, committed so the live server sees them."""

from __future__ import annotations

from typing import Any

from tenants.models import ApiKeyScope
from tenants.services import IssuedApiKey, create_api_key
from testing.database import committed
from testing.tenants import TenantFixture


def committed_key(tenant: TenantFixture, name: str, scopes: list[str], **options: Any) -> IssuedApiKey:
    return committed(lambda: create_api_key(tenant.tenant, name=name, scopes=scopes, **options))


def small_only_key(tenant: TenantFixture) -> IssuedApiKey:
    """An inference key allowed sim-small only."""
    return committed_key(tenant, "small only", [ApiKeyScope.INFERENCE], allowed_models=["sim-small"])


def read_only_key(tenant: TenantFixture) -> IssuedApiKey:
    """A key without the inference scope."""
    return committed_key(tenant, "read", [ApiKeyScope.READ])
