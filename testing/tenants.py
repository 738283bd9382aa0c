"""Test tenants with their secrets (tenants/tests/factories.py provisions them)."""

from __future__ import annotations

from dataclasses import dataclass

from django.test import Client
from rest_framework.test import APIClient

from tenants.models import Tenant
from tenants.services import ProvisionedTenant

TEST_PASSWORD = "correct-horse-battery-staple-7"


@dataclass(frozen=True)
class TenantFixture:
    provisioned: ProvisionedTenant

    @property
    def tenant(self) -> Tenant:
        return self.provisioned.tenant

    @property
    def host(self) -> str:
        return self.provisioned.domain.domain

    @property
    def admin_key(self) -> str:
        return self.provisioned.issued_key.secret

    @property
    def owner_email(self) -> str:
        return self.provisioned.owner.email

    def api_client(self, key: str | None = None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.admin_key if key is None else key}")
        return client

    def web_client(self, *, logged_in: bool = True) -> Client:
        """A browser on this tenant's subdomain, logged in as its owner."""
        client = Client(HTTP_HOST=self.host)
        if logged_in:
            response = client.post("/login/", {"username": self.owner_email, "password": TEST_PASSWORD})
            assert response.status_code == 302, response.content
        return client
