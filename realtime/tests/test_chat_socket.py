"""/ws/v1/chat/completions over the real platform: uvicorn, Channels over Redis, the gateway's code."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis
from django.conf import settings
from websockets.exceptions import InvalidStatus

from gateway.transports import websocket as chat_module
from realtime import streams
from realtime.tests.clients import bearer, chat_body, expected_answer, open_socket, read_all, text_of, ws_url
from routing.models import ProviderModel
from tenants.models import ApiKeyScope
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture


def chat(gateway: str, key: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), bearer(key)) as connection:
            await connection.send(orjson.dumps(body).decode())
            messages = await read_all(connection)
            return messages, connection.close_code

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_a_completion_streams_chunks_then_one_done_event(gateway: str, serving_tenant: TenantFixture) -> None:
    prompt = "Tell me about sockets."
    messages, close_code = chat(gateway, serving_tenant.admin_key, chat_body(prompt))

    *chunks, done = messages
    assert close_code == 1000
    assert chunks
    assert {message["type"] for message in chunks} == {"chunk"}
    assert done["type"] == "done"
    assert text_of(chunks) == expected_answer(prompt) == done["content"]
    seqs = [message["seq"] for message in messages]
    assert seqs == sorted(set(seqs))
    assert seqs[-1] == done["seq"]
    assert {message["stream_id"] for message in messages} == {done["stream_id"]}
    assert (done["model"], done["tier"]) == ("sim-small", 1)
    assert done["usage"]["completion_tokens"] == len(expected_answer(prompt).split())
    assert done["finish_reason"] == "stop"
    small = ProviderModel.objects.get(model_id="sim-small")
    cost = small.input_price_per_million * done["usage"]["prompt_tokens"]
    cost += small.output_price_per_million * done["usage"]["completion_tokens"]
    assert done["cost_usd"] == f"{cost / 1_000_000:.6f}"  # what the ledger bills, for the playground


def test_its_usage_reaches_the_ledger_queue_once(gateway: str, serving_tenant: TenantFixture) -> None:
    messages, _ = chat(gateway, serving_tenant.admin_key, chat_body("Meter me."))
    request_id = messages[-1]["request_id"]

    with redis.Redis.from_url(settings.REDIS_URL) as client:
        entries = client.xrange(settings.USAGE_STREAM)
    mine = [fields for _, fields in entries if fields[b"request_id"] == request_id.encode()]
    assert len(mine) == 1
    assert mine[0][b"status"] == b"200"
    assert mine[0][b"model"] == b"sim-small"
    assert mine[0][b"tenant_id"] == str(serving_tenant.tenant.pk).encode()
    assert int(mine[0][b"completion_tokens"]) == messages[-1]["usage"]["completion_tokens"]


def test_a_stream_cut_mid_answer_fails_over_to_a_complete_answer(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    prompt = "Survive a cut."
    messages, _ = chat(gateway, serving_tenant.admin_key, chat_body(prompt, user="fault:stream_cut"))

    assert messages[-1]["type"] == "done"
    assert messages[-1]["content"] == expected_answer(prompt) == text_of(messages)
    assert messages[-1]["model"] != "sim-small"


def test_an_invalid_request_gets_one_error_event(gateway: str, serving_tenant: TenantFixture) -> None:
    messages, close_code = chat(gateway, serving_tenant.admin_key, {"model": "auto", "messages": "nope"})

    assert [message["type"] for message in messages] == ["error"]
    assert messages[0]["status"] == 400
    assert messages[0]["error"]["type"] == "invalid_request_error"
    assert messages[0]["error"]["param"] == "messages"
    assert messages[0]["seq"] == 1
    assert close_code == 1000


def test_several_choices_are_refused(gateway: str, serving_tenant: TenantFixture) -> None:
    messages, _ = chat(gateway, serving_tenant.admin_key, {**chat_body("Hi"), "n": 2})

    assert [message["type"] for message in messages] == ["error"]
    assert (messages[0]["status"], messages[0]["error"]["param"]) == (400, "n")


def test_an_unknown_model_is_the_same_404_as_on_http(gateway: str, serving_tenant: TenantFixture) -> None:
    messages, _ = chat(gateway, serving_tenant.admin_key, {**chat_body("Hi"), "model": "no-such-model"})

    assert messages[0]["status"] == 404
    assert messages[0]["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_api_key"),
        ({"authorization": "Bearer aiaas_notarealprefix_notarealsecret0000000"}, 401, "invalid_api_key"),
        ({"authorization": "Basic abc"}, 401, "invalid_api_key"),
    ],
)
def test_a_handshake_without_a_usable_key_is_refused_before_accept(
    gateway: str, headers: dict[str, str], status: int, code: str
) -> None:
    async def run() -> None:
        async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), headers):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    assert refused.value.response.status_code == status
    assert orjson.loads(refused.value.response.body)["error"]["code"] == code


def test_an_unknown_socket_path_is_refused_with_404(gateway: str, serving_tenant: TenantFixture) -> None:
    async def run() -> None:
        async with open_socket(ws_url(gateway, "/ws/v1/nothing"), bearer(serving_tenant.admin_key)):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    assert refused.value.response.status_code == 404


def test_every_completion_gets_a_stream_of_its_own(gateway: str, serving_tenant: TenantFixture) -> None:
    first, _ = chat(gateway, serving_tenant.admin_key, chat_body("One."))
    second, _ = chat(gateway, serving_tenant.admin_key, chat_body("Two."))

    assert first[-1]["stream_id"] != second[-1]["stream_id"]
    logged = streams.read(serving_tenant.tenant.schema_name, first[-1]["stream_id"])
    assert "".join(event.event.get("delta", "") for event in logged) == expected_answer("One.")
    assert logged[-1].final


def test_the_keys_rate_limit_applies_as_on_http(gateway: str, serving_tenant: TenantFixture) -> None:
    limited = committed(
        lambda: create_api_key(
            serving_tenant.tenant, name="ws-limited", scopes=[ApiKeyScope.INFERENCE], requests_per_minute=1
        )
    ).secret

    first, _ = chat(gateway, limited, chat_body("Once."))
    second, close_code = chat(gateway, limited, chat_body("Twice."))

    assert first[-1]["type"] == "done"
    assert [message["type"] for message in second] == ["error"]
    assert second[0]["status"] == 429
    assert second[0]["error"]["type"] == "rate_limit_error"
    assert second[0]["retry_after"] >= 1
    assert close_code == 1000


def test_an_oversized_request_is_a_413_error_event(gateway: str, serving_tenant: TenantFixture) -> None:
    body = chat_body("x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))
    messages, _ = chat(gateway, serving_tenant.admin_key, body)

    assert messages[0]["status"] == 413
    assert messages[0]["error"]["code"] == "request_too_large"


def test_a_done_event_too_large_for_an_event_goes_without_its_content(
    gateway: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    settings.REALTIME_EVENT_MAX_BYTES = 450  # chunks fit; the answer in `done` does not
    prompt = "Make it long."
    messages, close_code = chat(gateway, serving_tenant.admin_key, chat_body(prompt))

    *chunks, done = messages
    assert done["type"] == "done"
    assert "content" not in done
    assert done["content_truncated"] is True
    assert text_of(chunks) == expected_answer(prompt)
    assert close_code == 1000


def test_an_error_echoing_a_huge_request_field_still_ends_the_stream(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    messages, close_code = chat(
        gateway, serving_tenant.admin_key, {**chat_body("Hi"), "model": "m" * 100_000}
    )

    assert [message["type"] for message in messages] == ["error"]
    assert messages[0]["error"]["code"] == "model_not_found"
    assert len(orjson.dumps(messages[0])) < settings.REALTIME_EVENT_MAX_BYTES
    assert close_code == 1000


def test_an_event_that_cannot_be_published_ends_the_stream_with_an_internal_error(
    gateway: str, serving_tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apublish = streams.apublish

    async def refusing_chunks(schema: str, stream_id: str, event: Any, *, final: bool = False) -> int:
        if event["type"] == "chunk":
            raise ValueError("an event is at most 65536 bytes of JSON")
        return await real_apublish(schema, stream_id, event, final=final)

    monkeypatch.setattr(chat_module, "apublish", refusing_chunks)
    messages, close_code = chat(gateway, serving_tenant.admin_key, chat_body("Fail me."))

    assert [message["type"] for message in messages] == ["error"]
    assert messages[0]["status"] == 500
    assert close_code == 1000


def test_a_completion_that_cannot_publish_its_final_event_closes_the_socket_with_1011(
    gateway: str, serving_tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apublish = streams.apublish
    calls: list[str] = []

    async def lost(schema: str, stream_id: str, event: Any, *, final: bool = False) -> int:
        calls.append(stream_id)
        if len(calls) == 1:
            return await real_apublish(schema, stream_id, event, final=final)
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(chat_module, "apublish", lost)
    messages, close_code = chat(gateway, serving_tenant.admin_key, chat_body("Lose Redis."))

    assert [message["type"] for message in messages] == ["chunk"]
    assert close_code == 1011


def test_a_socket_chat_is_routed_as_the_stream_it_is(gateway: str, serving_tenant: TenantFixture) -> None:
    """A socket always streams, so `auto` never plans an early exit it could not take
    back (the body's own `stream` flag does not matter)."""
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    body = {
        **chat_body("Label this ticket."),
        "model": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    }
    messages, _ = chat(gateway, serving_tenant.admin_key, {**body, "stream": False})

    done = messages[-1]
    assert done["type"] == "done"
    assert done["route_reason"].startswith("auto global-v1: tier ")
    assert "early exit" not in done["route_reason"]
