"""The guard's rules on their own: which addresses an exemption may open, how host and
port lists combine, and that the platform's ports bound every policy."""

from __future__ import annotations

import pytest
from pytest_django import Settings

from aiaas.outbound import ForbiddenTargetError, Policy, check_url, is_exemptable, policy_of, port_ranges


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "fd12::1"])
def test_an_exemption_opens_private_and_loopback_addresses(address: str) -> None:
    assert is_exemptable(address)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "fe80::1%eth0",
        "fd00:ec2::254",
        "100.100.100.200",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_no_exemption_opens_link_local_or_metadata_addresses(address: str) -> None:
    assert not is_exemptable(address)


def test_every_host_list_must_match_and_empty_lists_add_nothing() -> None:
    tenant = Policy().narrowed(hosts=[".Example.com", "api.other.net"])
    tool = tenant.narrowed(hosts=["docs.example.com"]).narrowed(hosts=[])

    assert [tenant.allows_host(h) for h in ("example.com", "a.b.example.com", "api.other.net")] == [True] * 3
    assert not tenant.allows_host("badexample.com")
    assert [tool.allows_host(h) for h in ("docs.example.com", "api.other.net")] == [True, False]


def test_a_tenant_without_ports_gets_the_default_and_the_platform_bounds_all(settings: Settings) -> None:
    settings.OUTBOUND_DEFAULT_PORTS = ["80", "443"]
    settings.OUTBOUND_PERMITTED_PORTS = ["80", "443", "8000-8999"]

    check_url("https://example.com/", policy_of())
    with pytest.raises(ForbiddenTargetError, match="port 8080 is not among the allowed ports"):
        check_url("http://example.com:8080/", policy_of())
    check_url("http://example.com:8080/", policy_of(ports=[8080]))
    with pytest.raises(ForbiddenTargetError, match="port 9090 is not among the allowed ports"):
        check_url("http://example.com:9090/", policy_of(ports=[9090]))
    with pytest.raises(ForbiddenTargetError, match="port 9090"):
        check_url("http://example.com:9090/", Policy())


@pytest.mark.parametrize("value", ["0", "65536", "443-80", "http", "", "80-", "-1"])
def test_port_settings_refuse_what_is_not_a_port_or_a_range(value: str) -> None:
    with pytest.raises(ValueError, match="is not a port or a range of ports"):
        port_ranges([value])


def test_the_system_check_names_unreadable_or_unreachable_port_settings(settings: Settings) -> None:
    from tenants.checks import check_outbound_ports

    assert check_outbound_ports() == []
    settings.OUTBOUND_PERMITTED_PORTS = ["80", "443", "https"]
    assert [message.id for message in check_outbound_ports()] == ["tenants.E001"]
    settings.OUTBOUND_PERMITTED_PORTS = ["443"]
    assert [message.id for message in check_outbound_ports()] == ["tenants.W001"]
