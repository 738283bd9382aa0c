"""The dashboard's Settings page: owners and admins see where requests may go, the
owner changes it, members and other workspaces get nothing."""

from __future__ import annotations

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from tenants.models import Tenant
from testing.tenants import TenantFixture

PAGE = "/dashboard/settings/"


def stored(tenant: TenantFixture) -> tuple[list[str], list[int]]:
    row = Tenant.objects.get(pk=tenant.tenant.pk)
    return row.outbound_allowed_hosts, row.outbound_allowed_ports


def test_the_owner_sets_the_hosts_and_ports_requests_may_reach(tenant: TenantFixture) -> None:
    owner = tenant.web_client()

    saved = owner.post(PAGE, {"hosts": "Docs.Example.com\n\n.example.org\n", "ports": "8443, 443"})
    page = owner.get(PAGE).content.decode()

    assert (saved.status_code, saved["Location"]) == (302, PAGE)
    assert stored(tenant) == ([".example.org", "docs.example.com"], [443, 8443])
    assert ".example.org\ndocs.example.com</textarea>" in page
    assert 'value="443, 8443"' in page


def test_a_port_outside_the_platforms_or_a_malformed_host_is_shown_and_not_saved(
    tenant: TenantFixture,
) -> None:
    owner = tenant.web_client()

    smtp = owner.post(PAGE, {"hosts": "", "ports": "25"})
    word = owner.post(PAGE, {"hosts": "", "ports": "https"})
    url = owner.post(PAGE, {"hosts": "https://api.example.com/", "ports": ""})

    assert smtp.status_code == 400
    assert "Port 25 is not permitted here (permitted: 80, 443, 1024-65535)." in smtp.content.decode()
    assert word.status_code == 400
    assert "Write ports as numbers from 1 to 65535" in word.content.decode()
    assert url.status_code == 400
    assert "is not a host name or address." in url.content.decode()
    assert stored(tenant) == ([], [])


def test_admins_read_it_members_and_other_workspaces_get_nothing(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    admin = browser_for(tenant, make_user(tenant, role=Role.ADMIN))
    member = browser_for(tenant, make_user(tenant, role=Role.MEMBER))
    outsider = other_tenant.web_client()
    outsider.defaults["HTTP_HOST"] = tenant.host

    assert admin.get(PAGE).status_code == 200
    assert "Only the workspace's owner changes these." in admin.get(PAGE).content.decode()
    assert admin.post(PAGE, {"hosts": "evil.example.net", "ports": ""}).status_code == 403
    assert member.get(PAGE).status_code == 403
    assert member.post(PAGE, {"hosts": "evil.example.net", "ports": ""}).status_code == 403
    assert outsider.post(PAGE, {"hosts": "evil.example.net", "ports": ""}).status_code == 302
    assert outsider.get(PAGE)["Location"].startswith("/login/")
    assert stored(tenant) == ([], [])
