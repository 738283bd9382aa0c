"""Forwarded headers, believed only from the proxies the platform runs behind.

Behind a TLS-terminating proxy the peer is the proxy; the client's address and
scheme arrive in X-Forwarded-For and X-Forwarded-Proto. Anyone can send those
headers, so `ForwardedHeadersMiddleware` applies them (to the ASGI scope's
`client` and `scheme`, which Django, the gateway and the consumers all read)
only when BEHIND_TLS_PROXY is on and the peer is in TRUSTED_PROXIES, and
removes them from every request, so no code can read a client's claim by
mistake. uvicorn's own handling is off (`--no-proxy-headers`): it believes
127.0.0.1 whatever the settings say.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from django.conf import settings
from starlette.types import ASGIApp, Receive, Scope, Send

Network = IPv4Network | IPv6Network

# Headers a client could use to claim another address, scheme or host.
FORWARDED_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-proto",
        b"x-real-ip",
    }
)
SCHEMES = {"http": {"http": "http", "https": "https"}, "websocket": {"http": "ws", "https": "wss"}}


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def trusted_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """The networks `entries` name (addresses or CIDRs); ValueError on anything else."""
    return _networks(tuple(entries))


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def forwarded_client(values: Sequence[str], networks: Sequence[Network]) -> str | None:
    """The client's address: the rightmost X-Forwarded-For hop that is not one of
    our proxies (hops left of it were written by the client and prove nothing)."""
    hops = [hop.strip() for value in values for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop if _is_address(hop) else None
    return hops[0] if hops else None


def _is_address(value: str) -> bool:
    try:
        ip_address(value)
    except ValueError:
        return False
    return True


def believed(scope: Scope) -> Scope:
    """`scope` without forwarded headers; with the forwarded client and scheme
    applied when BEHIND_TLS_PROXY is on and the peer is a trusted proxy."""
    forwarded = [
        (name, value.decode("latin-1")) for name, value in scope["headers"] if name in FORWARDED_HEADERS
    ]
    if not forwarded:
        return scope
    scope = {
        **scope,
        "headers": [(name, value) for name, value in scope["headers"] if name not in FORWARDED_HEADERS],
    }
    peer = scope.get("client")
    networks = trusted_networks(settings.TRUSTED_PROXIES) if settings.BEHIND_TLS_PROXY else ()
    if not peer or not is_trusted(peer[0], networks):
        return scope
    client = forwarded_client([value for name, value in forwarded if name == b"x-forwarded-for"], networks)
    if client is not None:
        scope["client"] = (client, 0)
    protos = [
        value.split(",")[-1].strip().lower() for name, value in forwarded if name == b"x-forwarded-proto"
    ]
    if protos and protos[-1] in SCHEMES[scope["type"]]:
        scope["scheme"] = SCHEMES[scope["type"]][protos[-1]]
    return scope


class ForwardedHeadersMiddleware:
    """Every HTTP request and WebSocket handshake through `believed`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in SCHEMES:
            scope = believed(scope)
        await self.app(scope, receive, send)
