"""The Starlette adapter on its own (no gateway): refusals rendered in OpenAI's
error shape, replays marked, on the real Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable

import httpx
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiaas.idempotency import IdempotencyStore
from aiaas.idempotency.starlette import idempotent
from aiaas.redis_keys import tenant_key

TENANT_ID = 8 * 10**12 + uuid.uuid4().int % 10**12


def app_with(store: IdempotencyStore, runs: list[bytes], release: asyncio.Event | None = None) -> Starlette:
    async def things(request: Request) -> Response:
        body = await request.body()

        async def run() -> Response:
            runs.append(body)
            if release is not None:
                await release.wait()
            return JSONResponse({"n": len(runs)}, 201)

        return await idempotent(
            store, request, TENANT_ID, body, run, headers=lambda: {"x-request-id": "req_1"}
        )

    return Starlette(routes=[Route("/things", things, methods=["POST"])])


def scenario(test: Callable[[httpx.AsyncClient, list[bytes], asyncio.Event], Awaitable[None]]) -> None:
    async def running() -> None:
        client = Redis.from_url(os.environ["REDIS_URL"])
        runs: list[bytes] = []
        release = asyncio.Event()
        app = app_with(IdempotencyStore(client, "secret"), runs, release)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                await test(http, runs, release)
        finally:
            async for name in client.scan_iter(match=tenant_key("idem", TENANT_ID, "*")):
                await client.delete(name)
            await client.aclose()

    asyncio.run(running())


def test_a_malformed_key_is_answered_in_openai_shape() -> None:
    async def test(http: httpx.AsyncClient, runs: list[bytes], release: asyncio.Event) -> None:
        response = await http.post("/things", content=b"{}", headers={"idempotency-key": "\x01"})

        assert response.status_code == 400
        assert response.headers["x-request-id"] == "req_1"
        assert response.json() == {
            "error": {
                "message": "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
                "type": "invalid_request_error",
                "code": "invalid_idempotency_key",
                "param": None,
            }
        }
        assert runs == []

    scenario(test)


def test_a_duplicate_while_running_is_409_with_retry_after_then_replays() -> None:
    async def test(http: httpx.AsyncClient, runs: list[bytes], release: asyncio.Event) -> None:
        headers = {"idempotency-key": f"k-{uuid.uuid4()}"}
        first = asyncio.create_task(http.post("/things", content=b'{"a": 1}', headers=headers))
        while not runs:
            await asyncio.sleep(0.01)

        busy = await http.post("/things", content=b'{"a": 1}', headers=headers)
        release.set()
        done = await first
        again = await http.post("/things", content=b'{"a":1}', headers=headers)

        assert (busy.status_code, busy.headers["retry-after"]) == (409, "1")
        assert busy.json()["error"]["code"] == "idempotency_key_in_use"
        assert (done.status_code, done.json()) == (201, {"n": 1})
        assert (again.status_code, again.json()) == (201, {"n": 1})
        assert again.headers["idempotent-replayed"] == "true"
        assert len(runs) == 1

    scenario(test)
