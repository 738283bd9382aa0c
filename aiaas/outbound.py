"""Outbound HTTP on a tenant's behalf (agent tools, URL ingestion, eval alerts): only
to the hosts and ports the caller's policy allows, and never to private, loopback or
link-local addresses (SSRF).

A `Policy` is built per tenant and narrowed per tool: a host must match every host
list (an empty list is no list), a port must be in every port list and always in the
platform's OUTBOUND_PERMITTED_PORTS. The host is resolved once, every
address is checked, and the connection goes to the checked addresses only (the
resolver below is the connector's), so a DNS answer cannot change between the check
and the connection. Redirects are not followed: a caller that follows one checks
its target again. Hosts the platform exempts (settings such as
AGENT_TOOL_ALLOWED_HOSTS, a signed tool manifest's `allowed_hosts`) may resolve to
private addresses, never to link-local or cloud metadata ones. A caller-set `Host`
header is refused: a request goes to the virtual host its URL names.
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings


class ForbiddenTargetError(Exception):
    """The URL points somewhere outbound requests may not reach."""


class ResponseTooLargeError(Exception):
    """The response body is over the caller's size limit."""


# IPv6 ranges that carry (or translate to) an IPv4 address: NAT64 (well-known and
# local-use prefixes), 6to4, Teredo, and the deprecated IPv4-compatible ::/96.
# A gateway may forward them to any IPv4 host, private ones included.
EMBEDDED_IPV4_NETWORKS = tuple(
    ipaddress.IPv6Network(network)
    for network in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96")
)
# Cloud instance metadata outside link-local ranges (AWS over IPv6, Alibaba Cloud):
# no exemption reaches them.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip.ipv4_mapped is not None or any(ip in network for network in EMBEDDED_IPV4_NETWORKS)
    ):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def is_exemptable(address: str) -> bool:
    """False for link-local and metadata addresses, which no allow-list opens, also
    when written as IPv4-mapped IPv6, and for IPv6 forms that a gateway translates
    to an IPv4 address we cannot see."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    translated = (
        isinstance(ip, ipaddress.IPv6Address)
        and not ip.is_loopback
        and any(ip in network for network in EMBEDDED_IPV4_NETWORKS)
    )
    return not (translated or ip.is_link_local or ip in METADATA_ADDRESSES)


def is_reachable(address: str, *, exempt: bool) -> bool:
    return is_public(address) or (exempt and is_exemptable(address))


PortRanges = tuple[range, ...]
# A host list's entry: a DNS name or IPv4 address, `.example.com` for a domain and its
# subdomains, or an IPv6 address without brackets; lowercase ASCII (IDNA), as yarl reads hosts.
HOST_PATTERN = re.compile(
    r"\.?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"|(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}"
)


def port_ranges(values: Iterable[str | int]) -> PortRanges:
    """Ports and inclusive ranges as settings write them ("80", "1024-65535");
    ValueError on anything else."""
    ranges = []
    for value in values:
        first, separator, last = str(value).strip().partition("-")
        last = last if separator else first
        if not (first.isdecimal() and last.isdecimal() and 1 <= int(first) <= int(last) <= 65535):
            raise ValueError(f"{value!r} is not a port or a range of ports (1-65535)")
        ranges.append(range(int(first), int(last) + 1))
    return tuple(ranges)


def host_matches(host: str, patterns: frozenset[str]) -> bool:
    """`api.example.com` matches itself; `.example.com` matches example.com and its
    subdomains (as Django's ALLOWED_HOSTS reads them)."""
    return host in patterns or any(
        pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern)) for pattern in patterns
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """Where one caller's requests may go. Narrowing only adds lists, so a tool's
    policy never allows what its tenant's refuses."""

    host_lists: tuple[frozenset[str], ...] = ()
    port_lists: tuple[PortRanges, ...] = ()
    exempt_hosts: frozenset[str] = field(default_factory=frozenset)

    def narrowed(
        self, *, hosts: Iterable[str] = (), ports: Iterable[int] = (), exempt_hosts: Iterable[str] = ()
    ) -> Policy:
        """This policy with another host list and port list (empty ones add nothing),
        and more hosts exempt from the private-address rule."""
        host_list, port_list = lowered(hosts), port_ranges(ports)
        return replace(
            self,
            host_lists=(*self.host_lists, host_list) if host_list else self.host_lists,
            port_lists=(*self.port_lists, port_list) if port_list else self.port_lists,
            exempt_hosts=self.exempt_hosts | lowered(exempt_hosts),
        )

    def allows_host(self, host: str) -> bool:
        return all(host_matches(host, patterns) for patterns in self.host_lists)

    def allows_port(self, port: int) -> bool:
        return all(any(port in ports for ports in port_list) for port_list in self.port_lists)


def lowered(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in hosts)


def policy_of(
    *, hosts: Iterable[str] = (), ports: Iterable[int] = (), exempt_hosts: Iterable[str] = ()
) -> Policy:
    """A tenant's policy: its hosts (none: any host), its ports (none:
    OUTBOUND_DEFAULT_PORTS)."""
    own_ports = port_ranges(ports) or port_ranges(settings.OUTBOUND_DEFAULT_PORTS)
    return Policy(port_lists=(own_ports,)).narrowed(hosts=hosts, exempt_hosts=exempt_hosts)


def is_permitted_port(port: int) -> bool:
    """Within the platform's maximum, whatever a policy says."""
    return any(port in ports for ports in port_ranges(settings.OUTBOUND_PERMITTED_PORTS))


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then refuses non-public addresses."""

    def __init__(self, exempt_hosts: frozenset[str]) -> None:
        self.exempt_hosts = exempt_hosts
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        exempt = host.lower() in self.exempt_hosts
        refused = [r["host"] for r in results if not is_reachable(r["host"], exempt=exempt)]
        if refused:
            raise ForbiddenTargetError(f"{host} resolves to a non-public address ({refused[0]})")
        return results

    async def close(self) -> None:
        await self.inner.close()


def check_url(url: str, policy: Policy) -> yarl.URL:
    """The URL as the HTTP client will use it; refuses other schemes, hosts and ports
    the policy does not allow, and literal addresses that are not public (the
    resolver never sees those).

    The host is read by yarl, as aiohttp reads it: yarl normalises hosts
    (IDNA/NFKC: `①②⑦.0.0.1` and fullwidth digits become `127.0.0.1`), so a
    check on the raw text would pass a literal the client then connects to
    directly. The caller must request this same URL object.
    """
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError, UnicodeError) as error:
        raise ForbiddenTargetError(f"not a usable URL: {error}") from None
    host = (parsed.raw_host or "").lower()
    if parsed.scheme not in ("http", "https") or not host:
        raise ForbiddenTargetError("only http and https URLs with a host are allowed")
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        if not is_reachable(str(literal), exempt=host in policy.exempt_hosts):
            raise ForbiddenTargetError(f"{host} is not a public address")
    if not policy.allows_host(host):
        raise ForbiddenTargetError(f"{host} is not among the allowed hosts")
    if parsed.port is None or not (is_permitted_port(parsed.port) and policy.allows_port(parsed.port)):
        raise ForbiddenTargetError(f"port {parsed.port} is not among the allowed ports")
    return parsed


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuses a `Host` header: it would send the request to another virtual host
    of the checked address than the URL names."""
    if any(name.strip().lower() == "host" for name in headers):
        raise ForbiddenTargetError("a Host header may not be set; the URL's host is used")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    encoding: str


async def send(
    method: str,
    url: str,
    *,
    policy: Policy,
    timeout_seconds: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> Response:
    """One request, without redirects, its body as bytes. A body over `max_bytes`
    is ResponseTooLargeError, found without reading more than that."""
    target = check_url(url, policy)
    check_headers(headers or {})
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy.exempt_hosts), force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.request(method, target, headers=headers, json=json_body, allow_redirects=False) as response,
    ):
        content = await read_capped(response, max_bytes)
        return Response(response.status, dict(response.headers), content, charset_of(response))


async def request(
    method: str,
    url: str,
    *,
    policy: Policy,
    timeout_seconds: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body: parsed JSON or text) of one request, as `send` makes it."""
    response = await send(
        method,
        url,
        policy=policy,
        timeout_seconds=timeout_seconds,
        max_bytes=max_bytes,
        headers=headers,
        json_body=json_body,
    )
    text = response.body.decode(response.encoding, errors="replace")
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text
    return response.status, response.headers, body


def charset_of(response: aiohttp.ClientResponse) -> str:
    """The declared charset if Python knows it, else UTF-8 (aiohttp's own fallback
    needs a body read through `read()`, which would not be capped)."""
    declared = response.charset
    if declared:
        try:
            return codecs.lookup(declared).name
        except LookupError:
            pass
    return "utf-8"


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, read in chunks, refused once it passes `limit` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise ResponseTooLargeError(f"the response is {response.content_length} bytes, over {limit}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise ResponseTooLargeError(f"the response is over {limit} bytes")
    return bytes(body)
