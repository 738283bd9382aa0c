"""The idempotency core (aiaas.idempotency.core) for Starlette endpoints: the /v1 gateway.

`idempotent(...)` runs a handler at most once per tenant and Idempotency-Key,
replays a stored response, and keeps the claim's lock alive while the response
(a stream included) is being sent; what was sent whole is stored just before
its last bytes go out. A refusal (400, 409, 422, 503) is an OpenAI-shaped
error response, or, when the caller passes `refuse`, whatever exception
`refuse` makes of it (the gateway raises its own, to render it with the rest).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from aiaas.idempotency.core import (
    HEADER,
    MAX_RUN_SECONDS,
    REDIS_UNAVAILABLE,
    REPLAYED_HEADER,
    REPLAYED_HEADERS,
    STREAM_DONE,
    Begin,
    Claim,
    IdempotencyError,
    IdempotencyStore,
    Outcome,
    ResponseRecord,
    is_storable,
    parse_key,
    refusal_for,
    request_fingerprint,
    unavailable,
)

logger = logging.getLogger(__name__)

# A response larger than this is sent but not kept (its claim is recorded as done without a body).
MAX_CAPTURE_BYTES = 8 * 1024 * 1024

Handler = Callable[[], Awaitable[Response]]
Refuse = Callable[[IdempotencyError], Exception]


async def idempotent(
    store: IdempotencyStore,
    request: Request,
    tenant_id: int,
    body: bytes,
    handler: Handler,
    *,
    principal: str = "",
    headers: Callable[[], Mapping[str, str]] | None = None,
    refuse: Refuse | None = None,
) -> Response:
    """`handler()`'s response, run at most once per tenant and Idempotency-Key.

    Call it after authentication, with the raw request body. `principal` names
    the caller (the API key) in the fingerprint; `headers` gives headers for a
    replay or a refusal (the request's context), under the stored ones.
    """
    try:
        key = parse_key(request.headers.get(HEADER))
    except IdempotencyError as refused:
        return _refused(refused, refuse, headers)
    if key is None:
        return await handler()
    fingerprint = request_fingerprint(request.method, _path(request), body, principal)
    try:
        begun = await _begin(store, tenant_id, key, fingerprint)
    except IdempotencyError as refused:
        return _refused(refused, refuse, headers)
    if begun.outcome is Outcome.REPLAY:
        assert begun.stored is not None
        return replay_response(begun.stored, headers() if headers else {})
    return await _run(store, begun.claim, handler)


async def _begin(store: IdempotencyStore, tenant_id: int, key: str, fingerprint: str) -> Begin:
    try:
        begun = await store.begin(tenant_id, key, fingerprint)
    except REDIS_UNAVAILABLE as error:
        logger.warning("idempotency: Redis unreachable (%s), refusing the request", error)
        raise unavailable() from None
    refusal = refusal_for(begun)
    if refusal is not None:
        raise refusal
    return begun


def _refused(
    refused: IdempotencyError, refuse: Refuse | None, headers: Callable[[], Mapping[str, str]] | None
) -> Response:
    if refuse is not None:
        raise refuse(refused) from None
    return refusal_response(refused, headers() if headers else {})


def refusal_response(refused: IdempotencyError, headers: Mapping[str, str]) -> Response:
    """The refusal in OpenAI's error shape, with Retry-After when it has one."""
    error = {"message": refused.message, "type": refused.error_type, "code": refused.code, "param": None}
    extra = (
        {} if refused.retry_after is None else {"retry-after": str(max(1, math.ceil(refused.retry_after)))}
    )
    return Response(
        orjson.dumps({"error": error}), refused.status, {**headers, **extra}, media_type="application/json"
    )


def replay_response(stored: ResponseRecord, headers: Mapping[str, str]) -> Response:
    """The stored response again, marked as a replay."""
    replayed = {**headers, **dict(stored.headers), REPLAYED_HEADER: "true"}
    if stored.content_type:
        replayed["content-type"] = stored.content_type
    return Response(stored.body, stored.status, replayed)


def _path(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


async def _run(store: IdempotencyStore, claim: Claim, handler: Handler) -> Response:
    lease = _Lease(store, claim)
    try:
        response = await handler()
    except BaseException:
        await lease.finish(None)
        raise
    return RecordingResponse(response, lease)


class _Lease:
    """A running claim: its lock is renewed until `finish` stores or abandons it."""

    def __init__(self, store: IdempotencyStore, claim: Claim) -> None:
        self.store = store
        self.claim = claim
        self.finished = False
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        stop_at = time.monotonic() + MAX_RUN_SECONDS
        while time.monotonic() < stop_at:
            await asyncio.sleep(self.store.lock_seconds / 3)
            try:
                if not await self.store.renew(self.claim):
                    return
            except REDIS_UNAVAILABLE as error:
                logger.warning("idempotency %s: lock not renewed (%s)", self.claim.redis_key, error)

    async def finish(self, record: ResponseRecord | None, ending: bytes = b"") -> None:
        """Store `record` if it is final, else remove the claim; once."""
        if self.finished:
            return
        self.finished = True
        self._renewer.cancel()
        # A cancelled request (client gone) must still release its key.
        with anyio.CancelScope(shield=True):
            try:
                if record is not None and is_storable(record, ending):
                    if not await self.store.complete(self.claim, record):
                        logger.warning("idempotency %s: taken over, result not stored", self.claim.redis_key)
                else:
                    await self.store.abandon(self.claim)
            except REDIS_UNAVAILABLE as error:
                logger.warning("idempotency %s: not recorded (%s)", self.claim.redis_key, error)


class _Capture:
    """The status, headers and bytes of a response as it is sent."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.ending = b""

    def start(self, message: Message) -> None:
        self.status = int(message["status"])
        self.headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in message.get("headers", [])
        ]

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.ending = (self.ending + chunk)[-len(STREAM_DONE) :]
        if self.size <= MAX_CAPTURE_BYTES:
            self.chunks.append(chunk)
        else:
            self.chunks.clear()

    def record(self) -> ResponseRecord:
        content_type = next((value for name, value in self.headers if name == "content-type"), "")
        kept = tuple((name, value) for name, value in self.headers if name in REPLAYED_HEADERS)
        body = b"".join(self.chunks) if self.size <= MAX_CAPTURE_BYTES else None
        return ResponseRecord(self.status, content_type, kept, body)


class RecordingResponse(Response):
    """Sends `inner` unchanged and stores what was sent just before its last
    bytes go out, so a client that has the whole response finds it stored."""

    def __init__(self, inner: Response, lease: _Lease) -> None:
        self.inner = inner
        self.lease = lease
        self.status_code = inner.status_code
        self.raw_headers = inner.raw_headers
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        capture = _Capture()

        async def tee(message: Message) -> None:
            if message["type"] == "http.response.start":
                capture.start(message)
            elif message["type"] == "http.response.body":
                capture.add(message.get("body", b""))
                if not message.get("more_body", False):
                    await self.lease.finish(capture.record(), capture.ending)
            await send(message)

        try:
            await self.inner(scope, receive, tee)
        finally:
            await self.lease.finish(None)
