"""Idempotency keys on the real Redis: the store's scripts and the Starlette helper,
driven through a tiny app that uses the gateway's own endpoint wrapper and
response builders. Every test uses fresh tenant ids and keys, and removes its
records, so runs never collide."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aiaas.idempotency import (
    TTL_SECONDS,
    IdempotencyStore,
    Outcome,
    redis_key,
    request_fingerprint,
)
from aiaas.idempotency import core as idempotency
from aiaas.idempotency import starlette as idempotency_http
from gateway.errors import GatewayError
from gateway.idempotency import idempotent
from gateway.service import RequestContext
from gateway.transports.http import endpoint, json_response

SECRET = "test-secret-for-idempotency"
BODY = {"model": "sim-small", "input": "hello"}
Work = Callable[[Request, bytes, RequestContext], Awaitable[Response]]


@dataclass
class Harness:
    http: httpx.AsyncClient
    redis: Redis
    store: IdempotencyStore
    tenants: tuple[int, int]
    runs: list[bytes] = field(default_factory=list)

    async def post(
        self,
        key: str | None,
        body: Any = BODY,
        *,
        tenant: int | None = None,
        principal: str = "key:1",
        path: str = "/v1/things",
    ) -> httpx.Response:
        headers = {"x-tenant": str(tenant or self.tenants[0]), "x-principal": principal}
        if key is not None:
            headers["idempotency-key"] = key
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.http.post(path, content=content, headers=headers)

    async def record(self, key: str, tenant: int | None = None) -> dict[bytes, bytes]:
        stored = await self.redis.hgetall(redis_key(tenant or self.tenants[0], key))
        return cast(dict[bytes, bytes], stored)


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


def new_tenant_id() -> int:
    return 10**12 + uuid.uuid4().int % 10**12


def tiny_app(harness: Callable[[], Harness], work: Work) -> Starlette:
    """One POST endpoint wired the way the gateway's are."""

    @endpoint
    async def things(request: Request, context: RequestContext) -> Response:
        body = await request.body()
        current = harness()

        async def run() -> Response:
            current.runs.append(body)
            return await work(request, body, context)

        return await idempotent(
            current.store,
            request,
            int(request.headers["x-tenant"]),
            body,
            run,
            principal=request.headers["x-principal"],
            headers=context.headers,
        )

    routes = [Route(path, things, methods=["POST"]) for path in ("/v1/things", "/v1/other")]
    return Starlette(routes=routes)


async def echo(request: Request, body: bytes, context: RequestContext) -> Response:
    return json_response({"echo": orjson.loads(body), "id": context.request_id}, context, 201)


@asynccontextmanager
async def harness_for(
    work: Work = echo,
    *,
    redis_url: str | None = None,
    secret: str = SECRET,
    lock_seconds: float = idempotency.LOCK_SECONDS,
    ttl_seconds: float = TTL_SECONDS,
) -> AsyncIterator[Harness]:
    client = Redis.from_url(redis_url or os.environ["REDIS_URL"])
    cleanup = Redis.from_url(os.environ["REDIS_URL"])
    harness: Harness | None = None
    app = tiny_app(lambda: harness_or_fail(harness), work)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        harness = Harness(
            http,
            client,
            IdempotencyStore(client, secret, lock_seconds=lock_seconds, ttl_seconds=ttl_seconds),
            (new_tenant_id(), new_tenant_id()),
        )
        try:
            yield harness
        finally:
            for tenant in harness.tenants:
                stored = [name async for name in cleanup.scan_iter(match=f"idem:{{t{tenant}}}:*")]
                if stored:
                    await cleanup.delete(*stored)
            await client.aclose()
            await cleanup.aclose()


def harness_or_fail(harness: Harness | None) -> Harness:
    assert harness is not None
    return harness


def run(scenario: Callable[[Harness], Awaitable[None]], work: Work = echo, **options: Any) -> None:
    async def main() -> None:
        async with harness_for(work, **options) as harness:
            # A broken lock would deadlock some scenarios: fail them instead.
            await asyncio.wait_for(scenario(harness), timeout=20)

    asyncio.run(main())


def test_the_first_request_runs_and_a_retry_gets_the_stored_response() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = await harness.post(key)
        again = await harness.post(key)

        assert first.status_code == again.status_code == 201
        assert again.content == first.content
        assert first.json()["echo"] == BODY
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["content-type"] == "application/json"
        # The replay is the first response: its request id matches the body's.
        assert again.headers["x-request-id"] == first.headers["x-request-id"] == first.json()["id"]
        assert float(again.headers["x-aiaas-overhead-ms"]) >= 0
        assert len(harness.runs) == 1

    run(scenario)


def test_equal_json_documents_are_the_same_request() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        await harness.post(key, b'{"a": 1, "b": [1, 2]}')
        again = await harness.post(key, b'{ "b":[1,2],\n "a":1 }')

        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert len(harness.runs) == 1

    run(scenario)


@pytest.mark.parametrize(
    "change",
    [
        {"body": {"model": "sim-small", "input": "something else"}},
        {"path": "/v1/other"},
        {"principal": "key:2"},
    ],
    ids=["body", "path", "api-key"],
)
def test_the_same_key_for_another_request_is_422(change: dict[str, Any]) -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        await harness.post(key)
        refused = await harness.post(key, **change)

        assert refused.status_code == 422
        assert refused.json() == {
            "error": {
                "message": "This Idempotency-Key was already used with a different request (method, path, "
                "API key or body). Use a new key for a new request.",
                "type": "invalid_request_error",
                "code": "idempotency_key_mismatch",
                "param": None,
            }
        }
        assert refused.headers["x-request-id"]
        assert len(harness.runs) == 1

    run(scenario)


def test_a_duplicate_while_the_first_runs_gets_409_with_retry_after() -> None:
    release = asyncio.Event()

    async def slow(request: Request, body: bytes, context: RequestContext) -> Response:
        await release.wait()
        return await echo(request, body, context)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = asyncio.create_task(harness.post(key))
        while not harness.runs:
            await asyncio.sleep(0.01)
        duplicate = await harness.post(key)
        release.set()
        original = await first

        assert duplicate.status_code == 409
        assert duplicate.headers["retry-after"] == "1"
        assert duplicate.json()["error"]["code"] == "idempotency_key_in_use"
        assert duplicate.json()["error"]["type"] == "conflict_error"
        assert original.status_code == 201
        assert (await harness.post(key)).headers["idempotent-replayed"] == "true"
        assert len(harness.runs) == 1

    run(scenario, slow)


def test_twenty_concurrent_duplicates_execute_once() -> None:
    async def slow(request: Request, body: bytes, context: RequestContext) -> Response:
        await asyncio.sleep(0.2)
        return await echo(request, body, context)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        responses = await asyncio.gather(*(harness.post(key) for _ in range(20)))

        executed = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
        others = [r for r in responses if r not in executed]
        assert len(harness.runs) == 1
        assert len(executed) == 1
        assert len(others) == 19
        for response in others:
            if response.status_code == 409:
                assert response.json()["error"]["code"] == "idempotency_key_in_use"
                assert response.headers["retry-after"] == "1"
            else:
                assert response.status_code == 201
                assert response.headers["idempotent-replayed"] == "true"
                assert response.content == executed[0].content

    run(scenario, slow)


def test_a_key_expires_24_hours_after_its_first_use() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        await harness.post(key)
        await asyncio.sleep(0.2)
        await harness.post(key)

        ttl_ms = await harness.redis.pttl(redis_key(harness.tenants[0], key))
        assert TTL_SECONDS == 24 * 3600
        assert TTL_SECONDS * 1000 - 10_000 < ttl_ms <= TTL_SECONDS * 1000 - 200

    run(scenario)


def test_two_tenants_with_the_same_key_never_collide() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        alpha, beta = harness.tenants
        alpha_body = {"model": "sim-small", "input": "alpha's secret"}
        beta_body = {"model": "sim-small", "input": "beta's"}

        first_alpha = await harness.post(key, alpha_body, tenant=alpha)
        first_beta = await harness.post(key, beta_body, tenant=beta)
        replay_alpha = await harness.post(key, alpha_body, tenant=alpha)
        replay_beta = await harness.post(key, beta_body, tenant=beta)

        assert first_alpha.status_code == first_beta.status_code == 201
        assert "idempotent-replayed" not in first_beta.headers
        assert replay_alpha.json()["echo"] == alpha_body
        assert replay_beta.json()["echo"] == beta_body
        assert b"alpha" not in replay_beta.content
        assert harness.runs == [orjson.dumps(alpha_body), orjson.dumps(beta_body)]
        assert redis_key(alpha, key) != redis_key(beta, key)
        assert redis_key(alpha, key).startswith(f"idem:{{t{alpha}}}:")

    run(scenario)


def sse_events(count: int, *, done: bool = True) -> list[bytes]:
    events = [
        b"data: "
        + orjson.dumps({"object": "chat.completion.chunk", "delta": {"content": f" word{i}"}})
        + b"\n\n"
        for i in range(count)
    ]
    return [*events, b"data: [DONE]\n\n"] if done else events


def streaming(events: list[bytes], fail_after: int | None = None) -> Work:
    async def work(request: Request, body: bytes, context: RequestContext) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for index, event in enumerate(events):
                if index == fail_after:
                    raise RuntimeError("the provider died mid-stream")
                await asyncio.sleep(0)
                yield event

        return StreamingResponse(chunks(), media_type="text/event-stream", headers=context.headers())

    return work


def test_a_stream_replay_is_byte_identical() -> None:
    # Large enough to be compressed before it is stored.
    events = sse_events(2000)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = await harness.post(key)
        record = await harness.record(key)
        again = await harness.post(key)

        assert first.content == b"".join(events)
        assert len(first.content) > idempotency.COMPRESS_ABOVE_BYTES
        assert again.content == first.content
        assert again.status_code == 200
        assert again.headers["content-type"].startswith("text/event-stream")
        assert again.headers["idempotent-replayed"] == "true"
        assert record[b"state"] == b"done"
        assert len(harness.runs) == 1

    run(scenario, streaming(events))


@pytest.mark.parametrize(("done", "runs", "status"), [(True, 1, 409), (False, 2, 200)])
def test_a_stream_too_large_to_keep_is_judged_by_its_end(
    monkeypatch: pytest.MonkeyPatch, done: bool, runs: int, status: int
) -> None:
    monkeypatch.setattr(idempotency_http, "MAX_CAPTURE_BYTES", 1000)
    events = sse_events(100, done=done)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = await harness.post(key)
        again = await harness.post(key)

        assert len(first.content) > 1000
        assert again.status_code == status
        assert len(harness.runs) == runs

    run(scenario, streaming(events))


def test_a_stream_without_done_is_not_stored() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = await harness.post(key)
        again = await harness.post(key)

        assert first.content == again.content == b"".join(sse_events(3, done=False))
        assert "idempotent-replayed" not in again.headers
        assert len(harness.runs) == 2

    run(scenario, streaming(sse_events(3, done=False)))


def test_a_stream_that_crashes_lets_a_retry_run() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        with pytest.raises(RuntimeError, match="died mid-stream"):
            await harness.post(key)

        assert await harness.record(key) == {}
        with pytest.raises(RuntimeError):
            await harness.post(key)
        assert len(harness.runs) == 2

    run(scenario, streaming(sse_events(5), fail_after=2))


def test_a_handler_that_raises_stores_nothing_and_a_retry_runs() -> None:
    async def invalid(request: Request, body: bytes, context: RequestContext) -> Response:
        raise GatewayError(400, "bad model", "invalid_request_error", "model_not_found")

    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = await harness.post(key)
        again = await harness.post(key)

        assert first.status_code == again.status_code == 400
        assert again.json()["error"]["code"] == "model_not_found"
        assert "idempotent-replayed" not in again.headers
        assert await harness.record(key) == {}
        assert len(harness.runs) == 2

    run(scenario, invalid)


@pytest.mark.parametrize(
    ("status", "stored"), [(400, True), (404, True), (409, False), (429, False), (502, False)]
)
def test_try_again_statuses_are_not_stored(status: int, stored: bool) -> None:
    async def answer(request: Request, body: bytes, context: RequestContext) -> Response:
        return json_response({"error": {"code": "returned"}}, context, status)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        await harness.post(key)
        again = await harness.post(key)

        assert again.status_code == status
        assert (again.headers.get("idempotent-replayed") == "true") is stored
        assert len(harness.runs) == (1 if stored else 2)

    run(scenario, answer)


def test_a_crashed_owner_lets_a_retry_run_once_its_lock_lapses() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        fingerprint = request_fingerprint("POST", "/v1/things", orjson.dumps(BODY), "key:1")
        # A process claimed the key and died: no complete, no abandon, no renewal.
        crashed = await harness.store.begin(harness.tenants[0], key, fingerprint)
        while_locked = await harness.post(key)
        await asyncio.sleep(0.35)
        retried = await harness.post(key)

        assert crashed.outcome is Outcome.PROCEED
        assert while_locked.status_code == 409
        assert retried.status_code == 201
        assert "idempotent-replayed" not in retried.headers
        assert not await harness.store.complete(
            crashed.claim, idempotency.ResponseRecord(200, "", (), b"late")
        )
        assert (await harness.post(key)).content == retried.content
        assert len(harness.runs) == 1

    run(scenario, lock_seconds=0.3)


def test_a_long_run_renews_its_lock() -> None:
    async def slow(request: Request, body: bytes, context: RequestContext) -> Response:
        await asyncio.sleep(1.0)
        return await echo(request, body, context)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = asyncio.create_task(harness.post(key))
        await asyncio.sleep(0.7)  # more than twice the lock
        duplicate = await harness.post(key)
        await first

        assert duplicate.status_code == 409
        assert len(harness.runs) == 1

    run(scenario, slow, lock_seconds=0.3)


@pytest.mark.parametrize(
    "value", ["", "x" * 256, "tab\there", "caf\xe9"], ids=["empty", "long", "tab", "latin1"]
)
def test_a_malformed_key_is_400(value: str) -> None:
    async def scenario(harness: Harness) -> None:
        headers = [
            (b"x-tenant", str(harness.tenants[0]).encode()),
            (b"x-principal", b"key:1"),
            (b"idempotency-key", value.encode("latin-1")),
        ]
        response = await harness.http.post("/v1/things", content=orjson.dumps(BODY), headers=headers)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_idempotency_key"
        assert harness.runs == []

    run(scenario)


def test_the_longest_printable_key_is_accepted() -> None:
    async def scenario(harness: Harness) -> None:
        key = ("~ !" + uuid.uuid4().hex) * 7
        key = key[:255]
        assert (await harness.post(key)).status_code == 201
        assert (await harness.post(key)).headers["idempotent-replayed"] == "true"

    run(scenario)


def test_without_a_key_nothing_is_stored() -> None:
    async def scenario(harness: Harness) -> None:
        await harness.post(None)
        await harness.post(None)

        assert len(harness.runs) == 2
        assert [
            name async for name in harness.redis.scan_iter(match=f"idem:{{t{harness.tenants[0]}}}:*")
        ] == []

    run(scenario)


def test_stored_bodies_are_sealed() -> None:
    async def scenario(harness: Harness) -> None:
        key = new_key()
        secret_body = {"model": "sim-small", "input": "the launch code is 0000"}
        await harness.post(key, secret_body)
        record = await harness.record(key)

        assert record[b"state"] == b"done"
        assert b"launch code" not in b"".join(record.values())
        assert key.encode() not in b"".join([*record.values(), redis_key(harness.tenants[0], key).encode()])
        # Another SECRET_KEY cannot read it: the record blocks, it does not replay.
        other_store = IdempotencyStore(harness.redis, "another-secret")
        refused = await other_store.begin(harness.tenants[0], key, record[b"fingerprint"].decode())
        assert refused.outcome is Outcome.REPLAY
        assert refused.stored is not None
        assert refused.stored.body is None

    run(scenario)


def test_a_response_too_large_to_store_still_blocks_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idempotency_http, "MAX_CAPTURE_BYTES", 64)

    async def scenario(harness: Harness) -> None:
        key = new_key()
        first = await harness.post(key, {"input": "x" * 100})
        again = await harness.post(key, {"input": "x" * 100})

        assert first.status_code == 201
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "idempotency_response_not_stored"
        assert "retry-after" not in again.headers
        assert len(harness.runs) == 1

    run(scenario)


def test_unreachable_redis_fails_closed_with_503() -> None:
    async def scenario(harness: Harness) -> None:
        response = await harness.post(new_key())

        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "idempotency_unavailable"
        assert harness.runs == []

    run(scenario, redis_url="redis://127.0.0.1:9/0")


def test_a_tenant_is_required() -> None:
    async def scenario(harness: Harness) -> None:
        with pytest.raises(ValueError, match="needs a tenant"):
            await harness.store.begin(0, new_key(), "fingerprint")

    run(scenario)
