"""`POST /v1/messages`: Anthropic's Messages API as a transport over the chat
service, so the stock `anthropic` SDK, pointed at the gateway, is routed,
limited, billed and logged like a chat completion (docs/anthropic.md).

The key comes as `x-api-key` or `Authorization: Bearer`; `anthropic-version`
may be absent (answered as 2023-06-01) or any dated version from 2023-06-01 on,
all answered in that one wire format. Errors are Anthropic-shaped and carry
the usual gateway headers plus `request-id`, where the SDK looks for it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send

from gateway import anthropic_mapping as mapping
from gateway import service
from gateway.auth import authenticate
from gateway.errors import GatewayError, from_provider_error, invalid
from gateway.events import ChatDelta, ChatFailed
from gateway.service import RequestContext, loop_clients
from gateway.transports.event_stream import EventStreamResponse
from gateway.transports.http import (
    endpoint,
    json_response,
    model_not_found,
    model_of,
    models_of,
    once,
    read_body,
)
from gateway.validation import input_tokens_estimate, parse_json_object, validate_chat
from routing.models import ROUTED_MODEL
from tenants.models import ApiKey, ApiKeyScope

VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
OLDEST_VERSION = "2023-06-01"


def headers(context: RequestContext) -> dict[str, str]:
    return {"request-id": context.request_id}


def error_response(error: GatewayError, context: RequestContext) -> Response:
    body = mapping.error_body(error, context.request_id)
    return json_response(body, context, error.status, {**error.headers(), **headers(context)})


async def authorized(request: Request, context: RequestContext) -> ApiKey:
    """The request's key, from `x-api-key` or `Authorization: Bearer` (the same key
    if both are sent), with the inference scope."""
    keys = request.headers.getlist("x-api-key")
    authorizations = request.headers.getlist("authorization")
    authorization = authorizations[0] if authorizations else ""
    several = len(keys) > 1 or len(authorizations) > 1
    if several or (keys and authorization and authorization != f"Bearer {keys[0]}"):
        raise GatewayError(
            401, "Send one API key, as x-api-key or as Authorization: Bearer.", "authentication_error"
        )
    if not keys and not authorization:
        raise GatewayError(401, "x-api-key header is required.", "authentication_error", "missing_api_key")
    header = authorization or f"Bearer {keys[0]}"
    context.api_key = await authenticate(loop_clients().keys, header, ApiKeyScope.INFERENCE)
    request.state.api_key = context.api_key  # whose origins CORS allows (gateway/transports/cors.py)
    return context.api_key


def check_version(request: Request) -> None:
    version = request.headers.get("anthropic-version")
    if version is not None and (not VERSION.fullmatch(version) or version < OLDEST_VERSION):
        raise invalid(
            f"anthropic-version: {version!r} is not supported; send {OLDEST_VERSION} or later.",
            "anthropic-version",
        )


async def create_message(request: Request, context: RequestContext) -> Response:
    api_key = await authorized(request, context)
    check_version(request)
    return await once(request, context, api_key, await read_body(request), serve_message)


async def serve_message(context: RequestContext, body: bytes) -> Response:
    chat = validate_chat(mapping.to_chat_body(parse_json_object(body)))
    prepared = await service.prepare_chat(context, chat)
    if prepared.streamed:
        return MessageStreamResponse(context, prepared)
    result = await service.complete_chat(context, prepared)
    message = mapping.message_from_completion(
        result.data, mapping.message_id(context.request_id), result.model.model_id
    )
    return json_response(message, context, headers=headers(context))


messages = endpoint(create_message, error_response)


async def count_message_tokens(request: Request, context: RequestContext) -> Response:
    """`POST /v1/messages/count_tokens`: the input tokens of a Messages request,
    checked as `POST /v1/messages` checks it (unknown or forbidden model included),
    without calling a model. Not billed or rate limited, as /v1/models."""
    api_key = await authorized(request, context)
    check_version(request)
    body = parse_json_object(await read_body(request))
    chat = validate_chat(mapping.to_chat_body(mapping.countable(body)))
    service.resolve_model(chat.model, await loop_clients().catalog.get(), api_key)
    return json_response({"input_tokens": input_tokens_estimate(chat)}, context, headers=headers(context))


count_tokens = endpoint(count_message_tokens, error_response)


async def list_anthropic_models(request: Request, context: RequestContext) -> Response:
    """`GET /v1/models` as the anthropic SDK's `models.list()` reads it: the models
    of OpenAI's list (`auto` first), paged by `limit`, `after_id`, `before_id`."""
    api_key = await authorized(request, context)
    check_version(request)
    models = [mapping.model_info(ROUTED_MODEL, None)]
    models += [mapping.model_info(model.model_id, model.context_window) for model in await models_of(api_key)]
    page = mapping.models_page(models, dict(request.query_params))
    return json_response(page, context, headers=headers(context))


async def retrieve_anthropic_model(request: Request, context: RequestContext) -> Response:
    api_key = await authorized(request, context)
    check_version(request)
    model_id = request.path_params["model_id"]
    if model_id == ROUTED_MODEL:
        return json_response(mapping.model_info(ROUTED_MODEL, None), context, headers=headers(context))
    model = await model_of(api_key, model_id)
    if model is None:
        raise model_not_found(model_id)
    info = mapping.model_info(model.model_id, model.context_window)
    return json_response(info, context, headers=headers(context))


list_models = endpoint(list_anthropic_models, error_response)
retrieve_model = endpoint(retrieve_anthropic_model, error_response)


class MessageStreamResponse(EventStreamResponse):
    """A streamed Message: Anthropic's events for one chat stream; a failure after
    the first delta is an `error` event that ends it (event_stream.py)."""

    def __init__(self, context: RequestContext, prepared: service.PreparedChat) -> None:
        super().__init__(context, prepared)
        self.prompt_tokens = prepared.request.estimated_prompt_tokens
        self.encoder = mapping.MessageEvents(mapping.message_id(context.request_id))

    def error_response(self, error: GatewayError) -> Response:
        return error_response(error, self.context)

    def headers_of_the_api(self) -> dict[str, str]:
        return headers(self.context)

    def opening(self) -> bytes:
        return self.encoder.start(self.model, self.prompt_tokens)

    def encode_delta(self, delta: dict[str, Any]) -> bytes:
        return self.encoder.delta(delta)

    async def relay(self, send: Send) -> None:
        async for event in self.events:
            if isinstance(event, ChatDelta):
                await send({"type": "http.response.body", "body": self.encode(event), "more_body": True})
                continue
            if isinstance(event, ChatFailed):
                error = from_provider_error(event.error)
                self.context.status, self.context.error_type = 200, error.error_type
                body = mapping.error_event(error, self.context.request_id)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            usage = self.context.outcome.usage.as_dict()
            body = self.encoder.finish(event.finish_reason, usage)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        self.context.succeed()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
