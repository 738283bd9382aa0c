"""Each event loop gets the gateway's clients of its own: a Redis connection
belongs to the loop that opened it. A second loop in the process (here, the
gateway app called through httpx's ASGI transport beside the served one) must
neither borrow the served loop's connections nor leave its own in that pool:
the served gateway read from a connection of a closed loop and answered 500
(under uvloop, memory corruption)."""

from __future__ import annotations

import asyncio

import httpx

from gateway import service
from gateway.transports.http import application
from testing.tenants import TenantFixture

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def test_a_second_event_loop_gets_clients_of_its_own_and_the_served_gateway_keeps_working(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    headers = {"authorization": f"Bearer {serving_tenant.admin_key}"}
    served = httpx.post(f"{gateway}/chat/completions", json=BODY, headers=headers, timeout=10)
    assert served.status_code == 200, served.text

    async def in_a_loop_of_its_own() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            response = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        clients = service.loop_clients()
        await service.close_loop_clients()  # as the served app's lifespan does at shutdown
        return response.status_code, id(clients)

    first_status, first_clients = asyncio.run(in_a_loop_of_its_own())
    second_status, second_clients = asyncio.run(in_a_loop_of_its_own())

    assert (first_status, second_status) == (200, 200)
    assert first_clients != second_clients
    served_sets = [id(clients) for loop, clients in service._loop_clients.items() if not loop.is_closed()]
    assert first_clients not in served_sets
    assert second_clients not in served_sets
    statuses = [
        httpx.post(f"{gateway}/chat/completions", json=BODY, headers=headers, timeout=10).status_code
        for _ in range(20)
    ]
    assert statuses == [200] * 20
