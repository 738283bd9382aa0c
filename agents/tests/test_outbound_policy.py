"""Tools reach only what their tenant's outbound policy, narrowed by the tool's manifest,
allows: hosts per tenant, hosts and ports per tool, no Host header of the caller's.
Through real runs against the loopback tool service (loopback exempted by settings)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from agents.models import RunStatus
from agents.tests.factories import make_run
from agents.tests.test_execution import execute
from tenants.models import Tenant
from tenants.services import set_outbound_policy
from testing.agents import Ledger, tool_manifests, trust_signed_tools, write_signed_manifests
from testing.tenants import TenantFixture

_names = itertools.count(1)


@pytest.fixture
def loopback(tools: Ledger, settings: Settings) -> None:
    """Both names of the tool service's host exempt from the private-address rule."""
    settings.AGENT_TOOL_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


def allow(tenant: TenantFixture, hosts: list[str], ports: list[int] | None = None) -> None:
    set_outbound_policy(Tenant.objects.get(pk=tenant.tenant.pk), hosts=hosts, ports=ports or [])


def fetch(tenant: TenantFixture, url: str, tool: str = "http", **tool_input: Any) -> tuple[str, str]:
    spec = {"steps": [{"id": "get", "kind": "tool", "tool": tool, "input": {"url": url, **tool_input}}]}
    run = execute(tenant, make_run(tenant, {"name": f"fetch-{next(_names)}", **spec}))
    return run.status, run.error


def narrow_tool(directory: Path, service: str, settings: Settings, **limits: Any) -> None:
    """The test tools, and `narrow`: the http tool with the manifest's `limits`."""
    directory.mkdir()
    key = trust_signed_tools(directory, service, settings)
    http = next(manifest for manifest in tool_manifests(service) if manifest["name"] == "http")
    write_signed_manifests(directory, [{**http, "name": "narrow", **limits}], key, "test")
    settings.AGENT_TOOL_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


def test_a_host_one_tenant_allows_is_refused_for_another(
    tenant: TenantFixture, other_tenant: TenantFixture, simulator: str, tool_service: str, loopback: None
) -> None:
    url = tool_service.replace("127.0.0.1", "localhost") + "/echo"
    allow(tenant, ["localhost"])
    allow(other_tenant, ["api.example.com", "127.0.0.1"])

    assert fetch(tenant, url) == (RunStatus.SUCCEEDED, "")
    assert fetch(other_tenant, url) == (
        RunStatus.FAILED,
        "get: refused target: localhost is not among the allowed hosts",
    )
    assert fetch(other_tenant, tool_service + "/echo") == (RunStatus.SUCCEEDED, "")


def test_a_domain_entry_allows_the_domain_and_its_subdomains_only(
    tenant: TenantFixture, simulator: str, tool_service: str, loopback: None
) -> None:
    allow(tenant, [".localhost"])

    assert fetch(tenant, tool_service.replace("127.0.0.1", "localhost") + "/echo")[0] == RunStatus.SUCCEEDED
    assert fetch(tenant, tool_service + "/echo") == (
        RunStatus.FAILED,
        "get: refused target: 127.0.0.1 is not among the allowed hosts",
    )


def test_a_tools_host_list_narrows_its_tenants_and_never_widens_it(
    tenant: TenantFixture, simulator: str, tool_service: str, settings: Settings, tmp_path: Path
) -> None:
    narrow_tool(tmp_path / "tools", tool_service, settings, allowed_hosts=["localhost"])
    by_name = tool_service.replace("127.0.0.1", "localhost") + "/echo"
    allow(tenant, [])

    assert fetch(tenant, by_name, tool="narrow")[0] == RunStatus.SUCCEEDED
    assert fetch(tenant, tool_service + "/echo", tool="narrow") == (
        RunStatus.FAILED,
        "get: refused target: 127.0.0.1 is not among the allowed hosts",
    )
    assert fetch(tenant, tool_service + "/echo", tool="http")[0] == RunStatus.SUCCEEDED
    allow(tenant, ["127.0.0.1"])
    assert fetch(tenant, by_name, tool="narrow") == (
        RunStatus.FAILED,
        "get: refused target: localhost is not among the allowed hosts",
    )


def test_a_port_outside_the_allowed_ports_is_refused(
    tenant: TenantFixture, simulator: str, tool_service: str, settings: Settings, tmp_path: Path
) -> None:
    port = int(tool_service.rsplit(":", 1)[1])
    narrow_tool(tmp_path / "tools", tool_service, settings, allowed_ports=[443])
    settings.OUTBOUND_DEFAULT_PORTS = ["80", "443"]
    refused = (RunStatus.FAILED, f"get: refused target: port {port} is not among the allowed ports")

    assert fetch(tenant, tool_service + "/echo") == refused
    allow(tenant, [], ports=[port])
    assert fetch(tenant, tool_service + "/echo") == (RunStatus.SUCCEEDED, "")
    assert fetch(tenant, tool_service + "/echo", tool="narrow") == refused
    settings.OUTBOUND_PERMITTED_PORTS = ["80", "443"]
    assert fetch(tenant, tool_service + "/echo") == refused


@pytest.mark.parametrize("name", ["Host", "host", " HOST"])
def test_a_host_header_of_the_caller_is_refused(
    tenant: TenantFixture, simulator: str, tool_service: str, loopback: None, name: str
) -> None:
    status, error = fetch(tenant, tool_service + "/echo", headers={name: "admin.internal"})

    assert (status, error) == (
        RunStatus.FAILED,
        "get: refused target: a Host header may not be set; the URL's host is used",
    )


def test_link_local_and_metadata_addresses_are_refused_even_when_exempt(
    tenant: TenantFixture, simulator: str, tools: Ledger, settings: Settings
) -> None:
    settings.AGENT_TOOL_ALLOWED_HOSTS = ["169.254.169.254", "[fd00:ec2::254]", "fd00:ec2::254"]

    assert fetch(tenant, "http://169.254.169.254/latest/meta-data") == (
        RunStatus.FAILED,
        "get: refused target: 169.254.169.254 is not a public address",
    )
    assert fetch(tenant, "http://[fd00:ec2::254]/latest/meta-data") == (
        RunStatus.FAILED,
        "get: refused target: fd00:ec2::254 is not a public address",
    )
