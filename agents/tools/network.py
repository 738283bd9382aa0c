"""Outbound HTTP for tools, refusing private, loopback and link-local targets (SSRF).

The host is resolved once, every address is checked, and the connection goes
to the checked addresses only (the resolver below is the connector's), so a
DNS answer cannot change between the check and the connection. Redirects are
not followed. A host in settings.AGENT_TOOL_ALLOWED_HOSTS or in the tool's
signed manifest `allowed_hosts` is exempt.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings


class ForbiddenTargetError(Exception):
    """The URL points somewhere tools may not reach."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then refuses non-public addresses."""

    def __init__(self, allowed_hosts: frozenset[str]) -> None:
        self.allowed_hosts = allowed_hosts
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if host.lower() not in self.allowed_hosts:
            refused = [r["host"] for r in results if not is_public(r["host"])]
            if refused:
                raise ForbiddenTargetError(f"{host} resolves to a non-public address ({refused[0]})")
        return results

    async def close(self) -> None:
        await self.inner.close()


def allowed_hosts(extra: tuple[str, ...] = ()) -> frozenset[str]:
    return frozenset(host.lower() for host in (*settings.AGENT_TOOL_ALLOWED_HOSTS, *extra))


def check_url(url: str, allowed: frozenset[str]) -> None:
    """Refuse other schemes, and literal addresses that are not public (the
    resolver never sees those)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenTargetError("only http and https URLs with a host are allowed")
    host = parts.hostname.lower()
    if host in allowed:
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return
    if not is_public(str(literal)):
        raise ForbiddenTargetError(f"{host} is not a public address")


async def request(
    method: str,
    url: str,
    *,
    allowed: frozenset[str],
    timeout_seconds: float,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body: parsed JSON or text) of one request, without redirects."""
    check_url(url, allowed)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allowed), force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.request(method, url, headers=headers, json=json_body, allow_redirects=False) as response,
    ):
        text = await response.text()
        try:
            body: Any = await response.json(content_type=None) if text else None
        except ValueError:
            body = text
        return response.status, dict(response.headers), body
