"""Outbound HTTP on a tenant's behalf (agent tools, URL ingestion), refusing private,
loopback and link-local targets (SSRF).

The host is resolved once, every address is checked, and the connection goes
to the checked addresses only (the resolver below is the connector's), so a
DNS answer cannot change between the check and the connection. Redirects are
not followed: a caller that follows one checks its target again. Hosts the
caller allows (its setting, e.g. AGENT_TOOL_ALLOWED_HOSTS, and a tool's signed
manifest `allowed_hosts`) are exempt.
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver


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


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip.ipv4_mapped is not None or any(ip in network for network in EMBEDDED_IPV4_NETWORKS)
    ):
        return False
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


def allowed_hosts(*groups: Iterable[str]) -> frozenset[str]:
    """The exempt hosts of every group (a setting, a manifest's list), lowercased."""
    return frozenset(host.lower() for group in groups for host in group)


def check_url(url: str, allowed: frozenset[str]) -> yarl.URL:
    """The URL as the HTTP client will use it; refuses other schemes, and literal
    addresses that are not public (the resolver never sees those).

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
    if host in allowed:
        return parsed
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return parsed
    if not is_public(str(literal)):
        raise ForbiddenTargetError(f"{host} is not a public address")
    return parsed


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
    allowed: frozenset[str],
    timeout_seconds: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> Response:
    """One request, without redirects, its body as bytes. A body over `max_bytes`
    is ResponseTooLargeError, found without reading more than that."""
    target = check_url(url, allowed)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allowed), force_close=True)
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
    allowed: frozenset[str],
    timeout_seconds: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body: parsed JSON or text) of one request, as `send` makes it."""
    response = await send(
        method,
        url,
        allowed=allowed,
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
