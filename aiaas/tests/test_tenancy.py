"""Requests reach a tenant's schema only through its host or its key."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import User
from tenants.api.base import TenantScopedViewSet
from tenants.context import activate_public_schema
from tenants.models import Tenant
from testing.tenants import TenantFixture


def test_an_unknown_tenant_host_is_a_404_not_the_public_site(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST="nobody.localhost").get("/")

    assert response.status_code == 404


def test_a_host_outside_base_domain_is_refused(tenant: TenantFixture) -> None:
    response = Client(HTTP_HOST="evil.example").get("/")

    assert response.status_code == 400


def test_an_inactive_tenants_host_is_a_404(tenant: TenantFixture) -> None:
    # A copy: the session fixture's object outlives this test's rolled-back write.
    inactive = Tenant.objects.get(pk=tenant.tenant.pk)
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])

    assert Client(HTTP_HOST=tenant.host).get("/").status_code == 404
    assert tenant.api_client().get("/api/v1/keys").status_code == 401


def test_the_api_takes_the_tenant_from_the_key_on_any_host(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    client = other_tenant.api_client()

    response = client.get("/api/v1/keys", HTTP_HOST=tenant.host)

    assert response.status_code == 200
    prefixes = {item["prefix"] for item in response.json()["data"]}
    assert other_tenant.provisioned.issued_key.api_key.prefix in prefixes
    assert tenant.provisioned.issued_key.api_key.prefix not in prefixes


def test_the_public_schema_holds_no_tenant_user(tenant: TenantFixture) -> None:
    """Code that forgets the tenant sees the public schema: staff only, never a tenant's users."""
    activate_public_schema()

    assert not User.objects.filter(email=tenant.owner_email).exists()
    with tenant_context(tenant.tenant):
        assert User.objects.filter(email=tenant.owner_email).exists()


def test_a_tenant_viewset_cannot_weaken_its_scoping() -> None:
    with pytest.raises(TypeError, match="must not override get_queryset"):
        type("Leaky", (TenantScopedViewSet,), {"get_queryset": lambda self: User.objects.all()})
    with pytest.raises(TypeError, match="must not override permission_classes"):
        type("Open", (TenantScopedViewSet,), {"permission_classes": ()})


def test_the_same_cache_key_never_collides_between_tenants(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    key = f"greeting-{uuid.uuid4()}"
    with tenant_context(tenant.tenant):
        cache.set(key, "alpha", timeout=60)
    with tenant_context(other_tenant.tenant):
        assert cache.get(key) is None
        cache.set(key, "beta", timeout=60)
    with tenant_context(tenant.tenant):
        assert cache.get(key) == "alpha"
