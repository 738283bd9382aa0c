"""`Idempotency-Key` for the POST actions Django serves (/api, and /v1 files, vector
stores and batches): `@idempotent` on a TenantScopedViewSet action.

The rules are aiaas.idempotency.core's (read its docstring): the key is scoped to
the tenant and bound to the calling API key, method, path and body; a
duplicate while the first runs gets 409 with Retry-After: 1, one after it the
stored status and body (`Idempotent-Replayed: true`), one with another request
422; keys expire 24 h after first use; Redis down is 503 (fail closed). The
action must finish within aiaas.idempotency.LOCK_SECONDS (no lock renewal here).

Stored: the response the action returned, as rendered, unless its status asks
for a retry (408, 409, 425, 429, 499, 5xx). An exception from the action
(validation errors are exceptions) stores nothing: the claim is removed and a
retry, or a corrected request under the same key, runs again.

Secrets: the 201 of POST /api/v1/keys holds the new key's secret, and a replay
must return it (a client whose connection dropped has no other way to learn
it). It is kept only when the client sent an Idempotency-Key, for at most 24 h,
and sealed (encrypted and authenticated) under a key derived from SECRET_KEY,
the tenant and the raw Idempotency-Key, which is never sent to Redis: reading
Redis does not reveal it, and only the same API key of the same tenant, sending
the same key and body, gets it back. During a rotation, what the keys in
SECRET_KEY_FALLBACKS sealed still opens.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import orjson
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpResponse, RawPostDataException
from django.http.response import HttpResponseBase
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from aiaas.idempotency import (
    HEADER,
    REDIS_UNAVAILABLE,
    REPLAYED_HEADER,
    REPLAYED_HEADERS,
    Claim,
    IdempotencyError,
    Outcome,
    ResponseRecord,
    SyncIdempotencyStore,
    is_storable,
    parse_key,
    refusal_for,
    request_fingerprint,
    unavailable,
)
from aiaas.redis_clients import sync_client
from tenants.api.base import TenantScopedViewSet

logger = logging.getLogger(__name__)

View = TypeVar("View", bound=TenantScopedViewSet)
Params = ParamSpec("Params")
Action = Callable[Concatenate[View, Request, Params], HttpResponseBase]


class IdempotencyRefused(APIException):
    """An IdempotencyError rendered by the API's OpenAI-shaped exception handler."""

    def __init__(self, refused: IdempotencyError) -> None:
        super().__init__(refused.message, refused.code)
        self.status_code = refused.status
        # DRF's handler turns `wait` into the Retry-After header.
        self.wait = refused.retry_after


def idempotency_store() -> SyncIdempotencyStore:
    """The store for the secret keys configured now (a rotation takes effect at once)."""
    return store_for_secrets(settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=1)
def store_for_secrets(secret: str, fallbacks: tuple[str, ...]) -> SyncIdempotencyStore:
    return SyncIdempotencyStore(sync_client("control"), secret, fallbacks=fallbacks)


def idempotent(action: Action[View, Params]) -> Action[View, Params]:
    """Run `action` at most once per tenant and Idempotency-Key (without the header, always)."""

    @functools.wraps(action)
    def respond(
        view: View, request: Request, /, *args: Params.args, **kwargs: Params.kwargs
    ) -> HttpResponseBase:
        try:
            key = parse_key(request.headers.get(HEADER))
        except IdempotencyError as refused:
            raise IdempotencyRefused(refused) from None
        if key is None:
            return action(view, request, *args, **kwargs)
        store = idempotency_store()
        principal = f"api-key:{view.api_key.pk}"
        fingerprint = request_fingerprint(
            request.method or "", request.get_full_path(), raw_body(request), principal
        )
        try:
            begun = store.begin(view.tenant.pk, key, fingerprint)
        except REDIS_UNAVAILABLE as error:
            logger.warning("idempotency: Redis unreachable (%s), refusing the request", error)
            raise IdempotencyRefused(unavailable()) from None
        refusal = refusal_for(begun)
        if refusal is not None:
            raise IdempotencyRefused(refusal)
        if begun.outcome is Outcome.REPLAY:
            assert begun.stored is not None
            return replay_response(begun.stored)
        return run_once(store, begun.claim, lambda: action(view, request, *args, **kwargs), view, request)

    return respond


def raw_body(request: Request) -> bytes:
    """What the key is bound to: the body, or for a multipart upload (which may be
    larger than Django reads into memory) its fields and each file's SHA-256."""
    if request.content_type.startswith("multipart/form-data"):
        return multipart_digest(request)
    try:
        return request.body
    except RawPostDataException:
        # The stream was parsed first; its data fingerprints alike for JSON bodies.
        return orjson.dumps(request.data, default=str)


def multipart_digest(request: Request) -> bytes:
    fields = sorted((name, values) for name, values in request.POST.lists())
    files = sorted(
        (name, [file_digest(upload) for upload in request.FILES.getlist(name)]) for name in request.FILES
    )
    return orjson.dumps({"fields": fields, "files": files})


def file_digest(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return f"{upload.name}:{digest.hexdigest()}"


def run_once(
    store: SyncIdempotencyStore,
    claim: Claim,
    call: Callable[[], HttpResponseBase],
    view: TenantScopedViewSet,
    request: Request,
) -> HttpResponseBase:
    """Run the claimed action and store its rendered response, or remove the claim."""
    record = None
    try:
        response = call()
        if isinstance(response, Response):
            # Rendered here, as DRF would after the action, to store the bytes sent.
            response = view.finalize_response(request, response)
            response.render()
        if isinstance(response, HttpResponse):  # streamed responses are not stored
            record = record_of(response)
    finally:
        finish(store, claim, record)
    return response


def finish(store: SyncIdempotencyStore, claim: Claim, record: ResponseRecord | None) -> None:
    try:
        if record is not None and is_storable(record):
            if not store.complete(claim, record):
                logger.warning("idempotency %s: taken over, result not stored", claim.redis_key)
        else:
            store.abandon(claim)
    except REDIS_UNAVAILABLE as error:
        logger.warning("idempotency %s: not recorded (%s)", claim.redis_key, error)


def record_of(response: HttpResponse) -> ResponseRecord:
    headers = tuple(
        (name.lower(), value) for name, value in response.items() if name.lower() in REPLAYED_HEADERS
    )
    return ResponseRecord(response.status_code, response.get("Content-Type", ""), headers, response.content)


def replay_response(stored: ResponseRecord) -> HttpResponse:
    response = HttpResponse(
        stored.body or b"", status=stored.status, content_type=stored.content_type or None
    )
    for name, value in stored.headers:
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response
