"""One adapter for every OpenAI-compatible provider, over a shared pooled client
(and, for a provider of kind `local`, the model run in process: local.py).

Each call has an explicit timeout per phase: connect, first token (the wait
for the response head and, when streaming, for each chunk, so a stalled stream
fails too) and the whole call (the request's deadline). Every failure becomes
a `ProviderError` saying whether retrying or falling back can help.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from django.conf import settings
from redis.asyncio import Redis

from gateway.providers import local
from gateway.providers.errors import FailureKind, ProviderError
from gateway.resilience import Bulkhead, BulkheadFullError, Deadline, SharedBulkhead, parse_retry_after
from routing.catalog import ModelSpec, ProviderSpec

BULKHEAD_WAIT_SECONDS = 1.0
# Tenant bulkheads kept per process before idle ones are dropped.
MAX_TENANT_BULKHEADS = 4096


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
    message = body[:500].decode("utf-8", "replace")
    code = None
    try:
        error = orjson.loads(body).get("error") or {}
        message, code = str(error.get("message") or message), error.get("code")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if status == 429:
        return ProviderError(
            FailureKind.RATE_LIMITED, message, status, parse_retry_after(headers.get("retry-after"))
        )
    if code == "context_length_exceeded":
        return ProviderError(FailureKind.CONTEXT_LENGTH, message, status)
    if status >= 500:
        return ProviderError(
            FailureKind.SERVER_ERROR, message, status, parse_retry_after(headers.get("retry-after"))
        )
    return ProviderError(FailureKind.CLIENT_ERROR, message, status)


@dataclass
class UpstreamTiming:
    """Time spent waiting on providers, subtracted from the gateway's overhead."""

    waiting_seconds: float = 0.0


class ProviderClient:
    """The process's connections to providers: one pooled aiohttp session and one
    bulkhead per provider (aiohttp's pool costs a fraction of httpcore's per call:
    bench/README.md), and within it one per tenant holding at most
    PROVIDER_TENANT_SHARE of the provider's slots, so no tenant can take them all.
    Given a Redis, a provider's cap also holds across every process sharing it
    (shared_bulkhead.py); the per-process bulkheads stay, in front of it."""

    def __init__(self, redis: Redis | None = None) -> None:
        self._redis = redis
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._shared_bulkheads: dict[str, SharedBulkhead] = {}
        self._tenant_bulkheads: dict[tuple[str, int], Bulkhead] = {}

    def _session(self, provider: ProviderSpec) -> aiohttp.ClientSession:
        session = self._sessions.get(provider.slug)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=provider.max_concurrent_calls, keepalive_timeout=30)
            session = aiohttp.ClientSession(
                connector=connector,
                headers=auth_headers(provider),
                json_serialize=lambda _: "",
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[provider.slug] = session
        return session

    def _bulkhead(self, provider: ProviderSpec) -> Bulkhead:
        bulkhead = self._bulkheads.get(provider.slug)
        if bulkhead is None:
            bulkhead = Bulkhead(provider.max_concurrent_calls, BULKHEAD_WAIT_SECONDS)
            self._bulkheads[provider.slug] = bulkhead
        return bulkhead

    def _shared_bulkhead(
        self, provider: ProviderSpec, deadline: Deadline
    ) -> contextlib.AbstractAsyncContextManager[None]:
        if self._redis is None:
            return contextlib.nullcontext()
        bulkhead = self._shared_bulkheads.get(provider.slug)
        if bulkhead is None or bulkhead.max_concurrent != provider.max_concurrent_calls:
            bulkhead = SharedBulkhead(
                self._redis, f"provider:{provider.slug}", provider.max_concurrent_calls, BULKHEAD_WAIT_SECONDS
            )
            self._shared_bulkheads[provider.slug] = bulkhead
        return bulkhead.slot(deadline.remaining())

    def _tenant_bulkhead(self, provider: ProviderSpec, tenant_id: int | None) -> Bulkhead:
        if tenant_id is None:
            return UNBOUNDED
        key = (provider.slug, tenant_id)
        bulkhead = self._tenant_bulkheads.get(key)
        if bulkhead is None:
            if len(self._tenant_bulkheads) >= MAX_TENANT_BULKHEADS:
                self._tenant_bulkheads = {k: b for k, b in self._tenant_bulkheads.items() if b.in_use}
            share = float(settings.PROVIDER_TENANT_SHARE)
            slots = max(1, math.floor(provider.max_concurrent_calls * share))
            bulkhead = self._tenant_bulkheads[key] = Bulkhead(slots, BULKHEAD_WAIT_SECONDS)
        return bulkhead

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    @contextlib.asynccontextmanager
    async def _slots(
        self, provider: ProviderSpec, tenant_id: int | None, deadline: Deadline
    ) -> AsyncIterator[None]:
        """A slot in the tenant's share of the provider, then one of the provider's in
        this process, then one of its slots across processes (leased until the deadline)."""
        try:
            async with (
                self._tenant_bulkhead(provider, tenant_id).slot(),
                self._bulkhead(provider).slot(),
                self._shared_bulkhead(provider, deadline),
            ):
                yield
        except BulkheadFullError:
            raise ProviderError(
                FailureKind.BULKHEAD_FULL, f"{provider.slug} is at its concurrency limit"
            ) from None

    @contextlib.asynccontextmanager
    async def _call(
        self,
        model: ModelSpec,
        path: str,
        body: dict[str, Any],
        deadline: Deadline,
        *,
        stream: bool,
        tenant_id: int | None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One upstream call, every failure of it translated into a ProviderError."""
        provider = model.provider
        if provider.is_local:
            raise ProviderError(
                FailureKind.CLIENT_ERROR, f"{model.model_id} runs in process and serves embeddings only", 400
            )
        headers = {"content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        try:
            async with (
                self._slots(provider, tenant_id, deadline),
                self._session(provider).post(
                    provider.base_url + path,
                    data=orjson.dumps(body),
                    headers=headers,
                    params=provider.default_query or None,
                    timeout=phase_timeouts(provider, deadline),
                ) as response,
            ):
                yield response
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise ProviderError(FailureKind.TIMEOUT, f"{type(error).__name__} from {provider.slug}") from None
        except aiohttp.ClientPayloadError as error:
            raise ProviderError(
                FailureKind.STREAM_CUT, f"{provider.slug} cut its response: {error}"
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError) as error:
            raise ProviderError(
                FailureKind.CONNECTION, f"{type(error).__name__} from {provider.slug}"
            ) from None

    async def post_json(
        self,
        model: ModelSpec,
        path: str,
        body: dict[str, Any],
        deadline: Deadline,
        timing: UpstreamTiming,
        tenant_id: int | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with self._call(model, path, body, deadline, stream=False, tenant_id=tenant_id) as response:
                content = await response.read()
                status, headers = response.status, response.headers
        finally:
            timing.waiting_seconds += time.perf_counter() - started
        if status != 200:
            raise error_from_response(status, content, headers)
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise ProviderError(
                FailureKind.BAD_RESPONSE, f"{model.provider.slug} sent a body that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise ProviderError(
                FailureKind.BAD_RESPONSE, f"{model.provider.slug} sent JSON that is not an object"
            )
        return data

    async def embeddings(
        self,
        model: ModelSpec,
        body: dict[str, Any],
        deadline: Deadline,
        timing: UpstreamTiming,
        tenant_id: int | None = None,
    ) -> dict[str, Any]:
        """An embeddings response: from the model itself when its provider is local
        (within the same bulkheads), else from the provider's /embeddings."""
        if not model.provider.is_local:
            return await self.post_json(model, "/embeddings", body, deadline, timing, tenant_id)
        started = time.perf_counter()
        try:
            async with self._slots(model.provider, tenant_id, deadline):
                return await local.embeddings(model, body, deadline)
        finally:
            timing.waiting_seconds += time.perf_counter() - started

    async def stream_chunks(
        self,
        model: ModelSpec,
        body: dict[str, Any],
        deadline: Deadline,
        timing: UpstreamTiming,
        tenant_id: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The provider's chat chunks, parsed. Ends normally only after `data: [DONE]`
        or a clean end of stream; a cut, stall or malformed chunk raises ProviderError."""
        started = time.perf_counter()
        call = self._call(model, "/chat/completions", body, deadline, stream=True, tenant_id=tenant_id)
        async with call as response:
            timing.waiting_seconds += time.perf_counter() - started
            if response.status != 200:
                raise error_from_response(response.status, await response.read(), response.headers)
            async for chunk in sse_json_events(response, timing):
                yield chunk


async def sse_json_events(
    response: aiohttp.ClientResponse, timing: UpstreamTiming
) -> AsyncIterator[dict[str, Any]]:
    lines = aiter(response.content)
    while True:
        started = time.perf_counter()
        try:
            raw = await anext(lines)
        except StopAsyncIteration:
            return
        finally:
            timing.waiting_seconds += time.perf_counter() - started
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderError(
                FailureKind.BAD_RESPONSE, "malformed chunk in the provider's stream"
            ) from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise ProviderError(FailureKind.SERVER_ERROR, str(chunk["error"])[:500])
        if not isinstance(chunk, dict):
            raise ProviderError(FailureKind.BAD_RESPONSE, "a chunk that is not a JSON object")
        yield chunk


def phase_timeouts(provider: ProviderSpec, deadline: Deadline) -> aiohttp.ClientTimeout:
    """Connect, then each read (the response head, then every chunk of a stream)."""
    return aiohttp.ClientTimeout(
        total=None,
        sock_connect=deadline.timeout_for(provider.connect_timeout),
        sock_read=deadline.timeout_for(provider.first_token_timeout),
    )


def auth_headers(provider: ProviderSpec) -> dict[str, str]:
    if not provider.credential or provider.auth_style == "none":
        return {}
    if provider.auth_style == "api-key":
        return {"api-key": provider.credential}
    return {"authorization": f"Bearer {provider.credential}"}


class Unbounded(Bulkhead):
    """No cap: calls that belong to no tenant (benches, probes)."""

    def __init__(self) -> None:
        super().__init__(1, 0.0)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        yield


UNBOUNDED = Unbounded()
