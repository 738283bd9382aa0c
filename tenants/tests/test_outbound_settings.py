"""The tenant's outbound policy (hosts and ports its tools and URL ingestion may reach):
set by its admin keys through /api/v1/tenant/settings and by staff in the admin,
normalized, and held within the platform's ports."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms.models import model_to_dict
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.models import User
from tenants.models import Tenant
from testing.tenants import TenantFixture

SETTINGS = "/api/v1/tenant/settings"


def stored(tenant: TenantFixture) -> tuple[list[str], list[int]]:
    row = Tenant.objects.get(pk=tenant.tenant.pk)
    return row.outbound_allowed_hosts, row.outbound_allowed_ports


def patch(client: APIClient, **body: Any) -> Any:
    return client.patch(SETTINGS, body, format="json")


def test_a_tenant_allows_any_public_host_on_the_default_ports_until_it_lists_some(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    body = api_client.get(SETTINGS).json()

    assert (body["outbound_allowed_hosts"], body["outbound_allowed_ports"]) == ([], [])


def test_hosts_and_ports_are_stored_lowercased_unique_and_sorted(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    response = patch(
        api_client,
        outbound_allowed_hosts=[" Docs.Example.COM", ".example.org", "docs.example.com", "2001:db8::1"],
        outbound_allowed_ports=[8443, 443, 443],
    )
    hosts_only = patch(api_client, outbound_allowed_hosts=["api.example.net"])

    assert response.status_code == 200, response.content
    assert response.json()["outbound_allowed_hosts"] == [".example.org", "2001:db8::1", "docs.example.com"]
    assert response.json()["outbound_allowed_ports"] == [443, 8443]
    assert hosts_only.status_code == 200
    assert stored(tenant) == (["api.example.net"], [443, 8443])


def test_a_malformed_host_or_a_port_outside_the_platforms_is_a_400(
    api_client: APIClient, tenant: TenantFixture
) -> None:
    url = patch(api_client, outbound_allowed_hosts=["https://api.example.com/"])
    smtp = patch(api_client, outbound_allowed_ports=[25])
    zero = patch(api_client, outbound_allowed_ports=[0])
    too_many = patch(api_client, outbound_allowed_hosts=[f"h{n}.example.com" for n in range(51)])

    assert (url.status_code, url.json()["error"]["param"]) == (400, "outbound_allowed_hosts")
    assert url.json()["error"]["message"] == (
        "outbound_allowed_hosts: 'https://api.example.com/' is not a host name or address."
    )
    assert (smtp.status_code, smtp.json()["error"]["message"]) == (
        400,
        "outbound_allowed_ports: Port 25 is not permitted here (permitted: 80, 443, 1024-65535).",
    )
    assert (zero.status_code, zero.json()["error"]["param"]) == (400, "outbound_allowed_ports[0]")
    assert (too_many.status_code, too_many.json()["error"]["param"]) == (400, "outbound_allowed_hosts")
    # Never reachable, whatever the platform exempts: refused when saved, not only when used.
    for address in ("169.254.169.254", "100.100.100.200", "fe80::1", "fd00:ec2::254"):
        error = patch(api_client, outbound_allowed_hosts=["docs.example.com", address]).json()["error"]
        assert error["param"] == "outbound_allowed_hosts", address
        assert "link-local or cloud metadata" in error["message"]
    assert stored(tenant) == ([], [])
    private = patch(api_client, outbound_allowed_hosts=["10.0.0.5"])  # the platform may exempt it
    assert private.status_code == 200


def test_another_tenants_key_changes_only_its_own_tenant(
    outsider_client: APIClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    response = patch(
        outsider_client, outbound_allowed_hosts=["evil.example.net"], outbound_allowed_ports=[8080]
    )

    assert response.status_code == 200
    assert stored(other_tenant) == (["evil.example.net"], [8080])
    assert stored(tenant) == ([], [])


def test_staff_edit_the_policy_in_the_admin_within_the_platforms_ports(tenant: TenantFixture) -> None:
    row = Tenant.objects.get(pk=tenant.tenant.pk)
    request = RequestFactory().get("/admin/")
    request.user = User(is_staff=True, is_superuser=True)
    form = admin.site._registry[Tenant].get_form(request, row, change=False)
    data = {key: value for key, value in model_to_dict(row).items() if value is not None}

    refused = form(data={**data, "outbound_allowed_ports": "22"}, instance=row)
    accepted = form(
        data={**data, "outbound_allowed_hosts": "api.example.com", "outbound_allowed_ports": "443,8443"},
        instance=row,
    )

    assert not refused.is_valid()
    assert refused.errors["outbound_allowed_ports"] == [
        "Port 22 is not permitted here (permitted: 80, 443, 1024-65535)."
    ]
    assert accepted.is_valid(), accepted.errors
    assert {"name", "slug", "cors_allowed_origins", "outbound_allowed_hosts"} <= set(form.base_fields)
