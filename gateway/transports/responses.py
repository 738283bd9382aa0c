"""`/v1/responses`: OpenAI's Responses API as a transport over the chat service,
so the stock `openai` SDK's `client.responses` is routed, limited, billed and
logged like a chat completion (gateway/responses_mapping.py maps the shapes).

A Response created with `store` (the default) is kept in the tenant's schema
(conversations/) with the items it answered, before the client sees it: a
retrieve or a next turn with `previous_response_id` right after finds it.
Another tenant's response id is not found, like an unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send

from conversations import selectors, services
from gateway import responses_mapping as mapping
from gateway import service
from gateway.errors import GatewayError, from_provider_error, invalid
from gateway.events import ChatDelta, ChatFailed
from gateway.service import RequestContext, loop_clients
from gateway.transports.event_stream import EventStreamResponse
from gateway.transports.http import (
    authorized,
    endpoint,
    error_response,
    json_response,
    once,
    read_body,
)
from gateway.validation import input_tokens_estimate, parse_json_object, validate_chat
from tenants.models import ApiKey, ApiKeyScope

MAX_ITEMS_PAGE = 100
DEFAULT_ITEMS_PAGE = 20


@dataclass(frozen=True, slots=True)
class Turn:
    """One create request: the Response it answers as, and the conversation's items before the answer."""

    request: mapping.ResponsesRequest
    identifier: str
    items: list[mapping.Item]
    api_key: ApiKey


async def keep(turn: Turn, response: dict[str, Any]) -> None:
    if turn.request.store:
        await sync_to_async(services.store_response, thread_sensitive=False)(
            turn.api_key.tenant, turn.api_key.pk, turn.items, response
        )


async def earlier_items(api_key: ApiKey, previous_response_id: str | None) -> list[mapping.Item]:
    if previous_response_id is None:
        return []
    items = await sync_to_async(selectors.conversation_after, thread_sensitive=False)(
        api_key.tenant, previous_response_id
    )
    if items is None:
        raise mapping.not_found(previous_response_id, "previous_response_id")
    return items


@endpoint
async def create_response(request: Request, context: RequestContext) -> Response:
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    return await once(request, context, api_key, await read_body(request), serve_response)


async def serve_response(context: RequestContext, body: bytes) -> Response:
    assert context.api_key is not None
    parsed = mapping.parse_create(parse_json_object(body))
    earlier = await earlier_items(context.api_key, parsed.previous_response_id)
    try:
        chat = validate_chat(mapping.to_chat_body(parsed, earlier))
        prepared = await service.prepare_chat(context, chat)
    except GatewayError as error:
        raise mapping.in_responses_terms(error) from None
    turn = Turn(
        parsed, mapping.response_id(context.request_id), [*earlier, *parsed.input_items], context.api_key
    )
    if prepared.streamed:
        return ResponseStreamResponse(context, prepared, turn)
    try:
        result = await service.complete_chat(context, prepared)
    except GatewayError as error:
        raise mapping.in_responses_terms(error) from None
    output, finish_reason = mapping.output_of_completion(result.data)
    response = mapping.response_object(
        parsed,
        turn.identifier,
        result.model.model_id,
        status="completed",
        output=output,
        finish_reason=finish_reason,
        usage=result.data.get("usage") or context.outcome.usage.as_dict(),
    )
    await keep(turn, response)
    return json_response(response, context)


@endpoint
async def count_input_tokens(request: Request, context: RequestContext) -> Response:
    """`POST /v1/responses/input_tokens`: the input tokens of a create request (its
    stored conversation included), checked as create checks it, without calling a
    model. Not billed or rate limited, as /v1/models."""
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    parsed = mapping.parse_count(parse_json_object(await read_body(request)))
    earlier = await earlier_items(api_key, parsed.previous_response_id)
    try:
        chat = validate_chat(mapping.to_chat_body(parsed, earlier))
        service.resolve_model(chat.model, await loop_clients().catalog.get(), api_key)
    except GatewayError as error:
        raise mapping.in_responses_terms(error) from None
    count = {"object": "response.input_tokens", "input_tokens": input_tokens_estimate(chat)}
    return json_response(count, context)


async def stored(request: Request, context: RequestContext) -> tuple[ApiKey, str, Any]:
    """The key, the path's response id, and the tenant's stored response (404 when it has none)."""
    api_key = await authorized(request, context, ApiKeyScope.INFERENCE)
    identifier = request.path_params["response_id"]
    found = await sync_to_async(selectors.stored_response, thread_sensitive=False)(api_key.tenant, identifier)
    if found is None:
        raise mapping.not_found(identifier)
    return api_key, identifier, found


@endpoint
async def retrieve_response(request: Request, context: RequestContext) -> Response:
    if request.query_params.get("stream", "false") != "false":
        raise invalid("Streaming a stored response again is not supported by this gateway.", "stream")
    _, _, found = await stored(request, context)
    return json_response(found.response, context)


@endpoint
async def delete_response(request: Request, context: RequestContext) -> Response:
    api_key, identifier, _ = await stored(request, context)
    await sync_to_async(services.delete_response, thread_sensitive=False)(api_key.tenant, identifier)
    return json_response(mapping.deleted(identifier), context)


@endpoint
async def list_input_items(request: Request, context: RequestContext) -> Response:
    _, _, found = await stored(request, context)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in {"asc", "desc"}:
        raise invalid("`order` must be asc or desc.", "order")
    limit = query.get("limit", str(DEFAULT_ITEMS_PAGE))
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_ITEMS_PAGE:
        raise invalid(f"`limit` must be an integer from 1 to {MAX_ITEMS_PAGE}.", "limit")
    items = found.input_items if order == "asc" else found.input_items[::-1]
    return json_response(mapping.item_page(items, int(limit), query.get("after")), context)


class ResponseStreamResponse(EventStreamResponse):
    """A streamed Response: the Responses events of one chat stream; a failure after
    the first delta is a `response.failed` event that ends it (event_stream.py). The
    final Response is stored before its last event is sent."""

    def __init__(self, context: RequestContext, prepared: service.PreparedChat, turn: Turn) -> None:
        super().__init__(context, prepared)
        self.turn = turn
        self.encoder = mapping.ResponseEvents(turn.request, turn.identifier)

    def error_response(self, error: GatewayError) -> Response:
        return error_response(error, self.context)

    def opening(self) -> bytes:
        return self.encoder.start(self.model)

    def encode_delta(self, delta: dict[str, Any]) -> bytes:
        return self.encoder.delta(delta)

    async def relay(self, send: Send) -> None:
        async for event in self.events:
            if isinstance(event, ChatDelta):
                await send({"type": "http.response.body", "body": self.encode(event), "more_body": True})
                continue
            usage = self.context.outcome.usage.as_dict()
            model = self.context.outcome.model
            self.model = model.model_id if model is not None else self.model
            if isinstance(event, ChatFailed):
                error = from_provider_error(event.error)
                self.context.status, self.context.error_type = 200, error.error_type
                response, body = self.encoder.fail(self.model, error, usage)
                await keep(self.turn, response)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            response, body = self.encoder.finish(self.model, event.finish_reason, usage)
            await keep(self.turn, response)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        self.context.succeed()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
