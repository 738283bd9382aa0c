"""One adapter for every OpenAI-compatible provider, over a shared pooled client.

Each call has an explicit timeout per phase: connect, first token (the wait
for the response head and, when streaming, for each chunk, so a stalled stream
fails too) and the whole call (the request's deadline). Every failure becomes
a `ProviderError` saying whether retrying or falling back can help.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from routing.catalog import ModelSpec, ProviderSpec
from routing.resilience import Bulkhead, BulkheadFullError, Deadline, parse_retry_after

BULKHEAD_WAIT_SECONDS = 1.0


@dataclass
class ProviderError(Exception):
    """A provider call failed.

    kind: rate_limited, server_error, timeout, connection, bad_response,
    context_length, client_error, circuit_open, bulkhead_full, stream_cut,
    unresumable (a stream cut after output no other model can continue).
    """

    kind: str
    message: str
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def retryable(self) -> bool:
        """Worth another attempt on the same model."""
        return self.kind in {
            "rate_limited",
            "server_error",
            "timeout",
            "connection",
            "bad_response",
            "stream_cut",
        }

    @property
    def fallbackable(self) -> bool:
        """Worth trying the next model; a client error would fail there too."""
        return self.kind not in {"client_error", "unresumable"}

    @property
    def counts_against_provider(self) -> bool:
        """Whether the circuit breaker should count it: the provider's fault, not the request's."""
        return self.kind not in {"client_error", "context_length", "circuit_open", "bulkhead_full"}


def error_from_response(status: int, body: bytes, headers: httpx.Headers) -> ProviderError:
    message = body[:500].decode("utf-8", "replace")
    code = None
    try:
        error = orjson.loads(body).get("error") or {}
        message, code = str(error.get("message") or message), error.get("code")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if status == 429:
        return ProviderError("rate_limited", message, status, parse_retry_after(headers.get("retry-after")))
    if code == "context_length_exceeded":
        return ProviderError("context_length", message, status)
    if status >= 500:
        return ProviderError("server_error", message, status, parse_retry_after(headers.get("retry-after")))
    return ProviderError("client_error", message, status)


@dataclass
class UpstreamTiming:
    """Time spent waiting on providers, subtracted from the gateway's overhead."""

    waiting_seconds: float = 0.0


class ProviderClient:
    """The process's clients to providers: one pooled httpx client and one bulkhead per provider."""

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._bulkheads: dict[str, Bulkhead] = {}

    def _client(self, provider: ProviderSpec) -> httpx.AsyncClient:
        client = self._clients.get(provider.slug)
        if client is None:
            limits = httpx.Limits(
                max_connections=provider.max_concurrent_calls,
                max_keepalive_connections=provider.max_concurrent_calls,
            )
            client = httpx.AsyncClient(
                base_url=provider.base_url,
                limits=limits,
                headers=auth_headers(provider),
                params=provider.default_query,
            )
            self._clients[provider.slug] = client
        return client

    def _bulkhead(self, provider: ProviderSpec) -> Bulkhead:
        bulkhead = self._bulkheads.get(provider.slug)
        if bulkhead is None:
            bulkhead = Bulkhead(provider.max_concurrent_calls, BULKHEAD_WAIT_SECONDS)
            self._bulkheads[provider.slug] = bulkhead
        return bulkhead

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def post_json(
        self, model: ModelSpec, path: str, body: dict[str, Any], deadline: Deadline, timing: UpstreamTiming
    ) -> dict[str, Any]:
        provider = model.provider
        started = time.perf_counter()
        try:
            async with self._bulkhead(provider).slot():
                response = await self._client(provider).post(
                    path,
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json"},
                    timeout=phase_timeouts(provider, deadline),
                )
        except BulkheadFullError:
            raise ProviderError("bulkhead_full", f"{provider.slug} is at its concurrency limit") from None
        except httpx.TimeoutException as error:
            raise ProviderError("timeout", f"{type(error).__name__} from {provider.slug}") from None
        except httpx.RemoteProtocolError as error:
            raise ProviderError("stream_cut", f"{provider.slug} cut its response: {error}") from None
        except httpx.TransportError as error:
            raise ProviderError("connection", f"{type(error).__name__} from {provider.slug}") from None
        finally:
            timing.waiting_seconds += time.perf_counter() - started
        if response.status_code != 200:
            raise error_from_response(response.status_code, response.content, response.headers)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ProviderError("bad_response", f"{provider.slug} sent a body that is not JSON") from None
        if not isinstance(data, dict):
            raise ProviderError("bad_response", f"{provider.slug} sent JSON that is not an object")
        return data

    async def stream_chunks(
        self, model: ModelSpec, body: dict[str, Any], deadline: Deadline, timing: UpstreamTiming
    ) -> AsyncIterator[dict[str, Any]]:
        """The provider's chat chunks, parsed. Ends normally only after `data: [DONE]`
        or a clean end of stream; a cut, stall or malformed chunk raises ProviderError."""
        provider = model.provider
        try:
            async with self._bulkhead(provider).slot():
                request = self._client(provider).build_request(
                    "POST",
                    "/chat/completions",
                    content=orjson.dumps(body),
                    headers={"content-type": "application/json", "accept": "text/event-stream"},
                    timeout=phase_timeouts(provider, deadline),
                )
                started = time.perf_counter()
                response = await self._client(provider).send(request, stream=True)
                timing.waiting_seconds += time.perf_counter() - started
                try:
                    if response.status_code != 200:
                        raise error_from_response(
                            response.status_code, await response.aread(), response.headers
                        )
                    async for chunk in sse_json_events(response, timing):
                        yield chunk
                finally:
                    await response.aclose()
        except BulkheadFullError:
            raise ProviderError("bulkhead_full", f"{provider.slug} is at its concurrency limit") from None
        except httpx.TimeoutException as error:
            raise ProviderError("timeout", f"{type(error).__name__} from {provider.slug}") from None
        except (httpx.TransportError, httpx.StreamError) as error:
            raise ProviderError("stream_cut", f"{type(error).__name__} from {provider.slug}") from None


async def sse_json_events(response: httpx.Response, timing: UpstreamTiming) -> AsyncIterator[dict[str, Any]]:
    lines = response.aiter_lines()
    while True:
        started = time.perf_counter()
        try:
            line = await anext(lines)
        except StopAsyncIteration:
            return
        finally:
            timing.waiting_seconds += time.perf_counter() - started
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProviderError("bad_response", "malformed chunk in the provider's stream") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise ProviderError("server_error", str(chunk["error"])[:500])
        if not isinstance(chunk, dict):
            raise ProviderError("bad_response", "a chunk that is not a JSON object")
        yield chunk


def phase_timeouts(provider: ProviderSpec, deadline: Deadline) -> httpx.Timeout:
    return httpx.Timeout(
        connect=deadline.timeout_for(provider.connect_timeout),
        read=deadline.timeout_for(provider.first_token_timeout),
        write=deadline.timeout_for(provider.connect_timeout),
        pool=deadline.timeout_for(provider.connect_timeout),
    )


def auth_headers(provider: ProviderSpec) -> dict[str, str]:
    if not provider.credential or provider.auth_style == "none":
        return {}
    if provider.auth_style == "api-key":
        return {"api-key": provider.credential}
    return {"authorization": f"Bearer {provider.credential}"}
