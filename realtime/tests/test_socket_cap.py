"""A tenant holds at most REALTIME_MAX_SOCKETS_PER_TENANT open WebSockets across
every process; the next handshake is refused with 429 before accept, another
tenant is unaffected, and a closed socket gives its lease back."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.exceptions import InvalidStatus

from realtime.connections import leases_key
from realtime.tests.clients import bearer, open_socket, ws_url
from testing.tenants import TenantFixture

CAP = 3


@pytest.fixture
def small_cap(settings: object) -> None:
    settings.REALTIME_MAX_SOCKETS_PER_TENANT = CAP  # type: ignore[attr-defined]


def test_a_tenant_past_its_socket_cap_is_refused_and_others_are_not(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture, small_cap: None
) -> None:
    url = ws_url(gateway, "/ws/v1/chat/completions")

    async def scenario() -> tuple[int, str, bool, bool]:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(CAP):
                await stack.enter_async_context(open_socket(url, bearer(serving_tenant.admin_key)))
            with pytest.raises(InvalidStatus) as refused:
                async with open_socket(url, bearer(serving_tenant.admin_key)):
                    pass
            async with open_socket(url, bearer(other_tenant.admin_key)):
                other_opened = True
        await asyncio.sleep(0.5)  # the server sees the closes and gives the leases back
        async with open_socket(url, bearer(serving_tenant.admin_key)):
            reopened = True
        response = refused.value.response
        return response.status_code, response.body.decode(), other_opened, reopened

    status, body, other_opened, reopened = asyncio.run(asyncio.wait_for(scenario(), 30))

    assert status == 429
    assert '"too_many_sockets"' in body
    assert other_opened
    assert reopened


def test_leases_are_kept_per_tenant() -> None:
    assert leases_key(7) == "realtime:{t7}:sockets"
    assert leases_key(7) != leases_key(8)
