"""/ws/v1/streams/<stream_id>: resume without gaps, tenancy, tokens and back-pressure."""

from __future__ import annotations

import asyncio
import random
import string
import time
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime import consumers, streams
from realtime.tests.clients import (
    bearer,
    expected_answer,
    metric,
    open_socket,
    read_all,
    text_of,
    tiny_receive_buffer_socket,
    ws_url,
)
from tenants.models import ApiKeyScope
from tenants.services import create_api_key, revoke_api_key
from testing.database import committed
from testing.tenants import TenantFixture


def stream_url(gateway: str, stream_id: str, query: str = "") -> str:
    return ws_url(gateway, f"/ws/v1/streams/{stream_id}") + (f"?{query}" if query else "")


def subscribe(url: str, headers: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int | None]:
    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with open_socket(url, headers) as connection:
            return await read_all(connection), connection.close_code

    return asyncio.run(asyncio.wait_for(run(), 30))


def refusal(url: str, headers: dict[str, str] | None = None, origin: str | None = None) -> tuple[int, str]:
    async def run() -> None:
        async with open_socket(url, headers, origin=origin):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    return refused.value.response.status_code, orjson.loads(refused.value.response.body)["error"]["code"]


def logged_stream(tenant: TenantFixture, count: int, *, final: bool = True) -> str:
    stream_id = streams.new_stream_id("job")
    for n in range(1, count + 1):
        streams.publish(
            tenant.tenant.schema_name, stream_id, {"type": "progress", "n": n}, final=final and n == count
        )
    return stream_id


def mint(gateway: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{gateway}/stream-tokens", json=body, headers=bearer(key), timeout=10)


def test_a_subscriber_gets_the_log_then_live_events_then_a_normal_close(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    schema = serving_tenant.tenant.schema_name
    stream_id = logged_stream(serving_tenant, 3, final=False)

    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with open_socket(
            stream_url(gateway, stream_id), bearer(serving_tenant.admin_key)
        ) as connection:
            first = [orjson.loads(await connection.recv()) for _ in range(3)]
            for n in range(4, 7):
                await streams.apublish(schema, stream_id, {"type": "progress", "n": n}, final=n == 6)
            return first + await read_all(connection), connection.close_code

    messages, close_code = asyncio.run(asyncio.wait_for(run(), 30))
    assert [(message["seq"], message["n"]) for message in messages] == [(n, n) for n in range(1, 7)]
    assert {message["stream_id"] for message in messages} == {stream_id}
    assert close_code == 1000


def test_resume_after_a_dropped_connection_yields_every_event_exactly_once(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    schema = serving_tenant.tenant.schema_name
    stream_id = logged_stream(serving_tenant, 5, final=False)
    headers = bearer(serving_tenant.admin_key)

    async def run() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async with open_socket(stream_url(gateway, stream_id), headers) as connection:
            seen += [orjson.loads(await connection.recv()) for _ in range(3)]
        # Dropped; the stream goes on meanwhile.
        for n in range(6, 11):
            await streams.apublish(schema, stream_id, {"type": "progress", "n": n}, final=n == 10)
        async with open_socket(
            stream_url(gateway, stream_id, f"after={seen[-1]['seq']}"), headers
        ) as connection:
            seen += await read_all(connection)
        return seen

    seen = asyncio.run(asyncio.wait_for(run(), 30))
    assert [message["seq"] for message in seen] == list(range(1, 11))
    assert [message["n"] for message in seen] == list(range(1, 11))


def test_a_completion_is_resumed_on_its_stream(gateway: str, serving_tenant: TenantFixture) -> None:
    headers = bearer(serving_tenant.admin_key)
    prompt = "Resume me."

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with open_socket(ws_url(gateway, "/ws/v1/chat/completions"), headers) as connection:
            await connection.send(
                orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}]}).decode()
            )
            before = [orjson.loads(await connection.recv())]
        after = before[-1]["seq"]
        url = stream_url(gateway, before[0]["stream_id"], f"after={after}")
        async with open_socket(url, headers) as connection:
            return before, await read_all(connection)

    before, rest = asyncio.run(asyncio.wait_for(run(), 30))
    assert rest[-1]["type"] == "done"
    assert text_of(before + rest) == expected_answer(prompt) == rest[-1]["content"]
    seqs = [message["seq"] for message in before + rest]
    assert seqs == sorted(set(seqs))


def test_another_tenants_key_gets_the_same_404_as_a_missing_stream(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    stream_id = logged_stream(serving_tenant, 2)
    missing = streams.new_stream_id("job")

    assert refusal(stream_url(gateway, stream_id), bearer(other_tenant.admin_key)) == (
        404,
        "stream_not_found",
    )
    assert refusal(stream_url(gateway, missing), bearer(serving_tenant.admin_key)) == (
        404,
        "stream_not_found",
    )
    assert refusal(stream_url(gateway, "not-a-stream"), bearer(serving_tenant.admin_key)) == (
        404,
        "stream_not_found",
    )


def test_another_tenants_token_cannot_subscribe(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    stream_id = logged_stream(serving_tenant, 2)
    token = mint(gateway, other_tenant.admin_key, purpose="streams", stream_id=stream_id).json()["token"]

    assert refusal(stream_url(gateway, stream_id, f"token={token}")) == (404, "stream_not_found")


def test_a_token_opens_one_socket_for_its_purpose_and_stream_only(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id, other_stream = logged_stream(serving_tenant, 2), logged_stream(serving_tenant, 2)
    key = serving_tenant.admin_key
    minted = mint(gateway, key, purpose="streams", stream_id=stream_id)
    assert minted.status_code == 200
    assert minted.json()["expires_in"] == 60
    token = minted.json()["token"]

    messages, close_code = subscribe(stream_url(gateway, stream_id, f"token={token}"))
    assert [message["seq"] for message in messages] == [1, 2]
    assert close_code == 1000
    assert refusal(stream_url(gateway, stream_id, f"token={token}")) == (401, "invalid_stream_token")  # used

    for_stream = mint(gateway, key, purpose="streams", stream_id=stream_id).json()["token"]
    assert refusal(stream_url(gateway, other_stream, f"token={for_stream}")) == (401, "invalid_stream_token")
    for_chat = mint(gateway, key, purpose="chat.completions").json()["token"]
    assert refusal(stream_url(gateway, stream_id, f"token={for_chat}")) == (401, "invalid_stream_token")


def test_a_token_bound_to_an_origin_is_refused_from_another(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id = logged_stream(serving_tenant, 1)
    key = serving_tenant.admin_key
    origin = "https://app.example.com"

    token = mint(gateway, key, purpose="streams", origin=origin).json()["token"]
    assert refusal(stream_url(gateway, stream_id, f"token={token}"), origin="https://evil.example") == (
        401,
        "invalid_stream_token",
    )
    token = mint(gateway, key, purpose="streams", origin=origin).json()["token"]

    async def run() -> list[dict[str, Any]]:
        async with open_socket(stream_url(gateway, stream_id, f"token={token}"), origin=origin) as connection:
            return await read_all(connection)

    assert [message["seq"] for message in asyncio.run(run())] == [1]


def test_a_token_dies_with_the_key_that_minted_it(gateway: str, serving_tenant: TenantFixture) -> None:
    stream_id = logged_stream(serving_tenant, 1)
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="ws", scopes=[ApiKeyScope.INFERENCE])
    )
    token = mint(gateway, issued.secret, purpose="streams").json()["token"]
    committed(lambda: revoke_api_key(issued.api_key))

    assert refusal(stream_url(gateway, stream_id, f"token={token}")) == (401, "invalid_stream_token")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"purpose": "everything"}, "purpose"),
        ({}, "purpose"),
        ({"purpose": "streams", "stream_id": "../x"}, "stream_id"),
        ({"purpose": "chat.completions", "stream_id": streams.new_stream_id("job")}, "stream_id"),
        ({"purpose": "streams", "origin": "javascript:alert(1)"}, "origin"),
        ({"purpose": "streams", "extra": 1}, "extra"),
    ],
)
def test_a_bad_token_request_is_a_400_naming_the_field(
    gateway: str, serving_tenant: TenantFixture, body: dict[str, Any], param: str
) -> None:
    response = mint(gateway, serving_tenant.admin_key, **body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_minting_a_token_needs_a_usable_inference_key(gateway: str, serving_tenant: TenantFixture) -> None:
    read_only = committed(lambda: create_api_key(serving_tenant.tenant, name="ro", scopes=[ApiKeyScope.READ]))

    assert httpx.post(f"{gateway}/stream-tokens", json={"purpose": "streams"}, timeout=10).status_code == 401
    assert mint(gateway, read_only.secret, purpose="streams").status_code == 403
    assert (
        httpx.post(
            f"{gateway}/stream-tokens", content=b"{", headers=bearer(serving_tenant.admin_key)
        ).status_code
        == 400
    )


def test_a_bad_resume_position_is_refused(gateway: str, serving_tenant: TenantFixture) -> None:
    stream_id = logged_stream(serving_tenant, 1)

    assert refusal(stream_url(gateway, stream_id, "after=-1"), bearer(serving_tenant.admin_key)) == (
        400,
        "invalid_value",
    )


def test_a_non_ascii_digit_position_is_a_400_and_does_not_spend_the_token(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id = logged_stream(serving_tenant, 2)
    token = mint(gateway, serving_tenant.admin_key, purpose="streams", stream_id=stream_id).json()["token"]

    # "²".isdigit() is True and int("²") raises: this was an HTTP 500.
    assert refusal(stream_url(gateway, stream_id, f"after=%C2%B2&token={token}")) == (400, "invalid_value")
    messages, close_code = subscribe(stream_url(gateway, stream_id, f"after=1&token={token}"))
    assert [message["seq"] for message in messages] == [2]
    assert close_code == 1000


def test_a_position_above_the_streams_last_seq_is_a_400(gateway: str, serving_tenant: TenantFixture) -> None:
    stream_id = logged_stream(serving_tenant, 3, final=False)

    assert refusal(stream_url(gateway, stream_id, "after=4"), bearer(serving_tenant.admin_key)) == (
        400,
        "invalid_value",
    )


def test_resuming_from_an_expired_position_says_so(
    gateway: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    settings.REALTIME_STREAM_MAX_EVENTS = 3
    stream_id = logged_stream(serving_tenant, 6)

    messages, close_code = subscribe(
        stream_url(gateway, stream_id, "after=1"), bearer(serving_tenant.admin_key)
    )
    assert [message["type"] for message in messages] == ["error"]
    assert messages[0]["error"]["code"] == "stream_expired"
    assert messages[0]["status"] == 410
    assert messages[0]["stream_id"] == stream_id
    assert messages[0]["seq"] == 1  # the reader's position: nothing after it was delivered
    assert close_code == 4410


def noise(size: int) -> str:
    return "".join(random.choices(string.ascii_letters, k=size))


def test_a_slow_reader_gets_every_byte_coalesced_and_the_final_event(
    platform_url: str, gateway: str, serving_tenant: TenantFixture
) -> None:
    coalesced_before = metric(platform_url, "aiaas_websocket_coalesced_messages_total")
    schema = serving_tenant.tenant.schema_name
    stream_id = streams.new_stream_id("job")
    streams.publish(schema, stream_id, {"type": "status", "status": "started"})
    parts = [noise(6000) for _ in range(1000)]

    async def run() -> list[dict[str, Any]]:
        sock = tiny_receive_buffer_socket(stream_url(gateway, stream_id))
        url = stream_url(gateway, stream_id)
        async with open_socket(url, bearer(serving_tenant.admin_key), sock=sock, max_queue=1) as connection:
            # The reader lags far behind (6 MB, more than the socket buffers hold), then catches up.
            for part in parts:
                await streams.apublish(schema, stream_id, {"type": "chunk", "delta": part})
            await streams.apublish(schema, stream_id, {"type": "status", "status": "done"}, final=True)
            received = []
            while True:
                try:
                    received.append(orjson.loads(await connection.recv()))
                except ConnectionClosed:
                    return received
                await asyncio.sleep(0.001)

    received = asyncio.run(asyncio.wait_for(run(), 60))
    assert text_of(received) == "".join(parts)
    assert received[-1] == {"type": "status", "status": "done", "stream_id": stream_id, "seq": 1002}
    assert len(received) < 1002  # deltas were coalesced
    coalesced = [message for message in received if "from_seq" in message]
    assert coalesced
    assert all(message["from_seq"] < message["seq"] for message in coalesced)
    merges = sum(message["seq"] - message["from_seq"] for message in coalesced)
    assert metric(platform_url, "aiaas_websocket_coalesced_messages_total") - coalesced_before >= merges > 0


def test_a_reader_that_never_reads_is_closed_with_4008_and_others_are_not_slowed(
    platform_url: str, gateway: str, serving_tenant: TenantFixture, settings: Any
) -> None:
    send_errors_before = metric(platform_url, "aiaas_websocket_send_errors_total")
    settings.REALTIME_STALLED_READER_SECONDS = 1.0
    schema = serving_tenant.tenant.schema_name
    stalled_stream = streams.new_stream_id("job")

    async def publish_blobs() -> None:  # 6 MB, more than the socket buffers hold
        for _ in range(150):
            await streams.apublish(schema, stalled_stream, {"type": "blob", "data": noise(40_000)})
        await streams.apublish(schema, stalled_stream, {"type": "end"}, final=True)

    asyncio.run(publish_blobs())
    headers = bearer(serving_tenant.admin_key)

    async def healthy_reader() -> float:
        stream_id = streams.new_stream_id("job")
        await streams.apublish(schema, stream_id, {"type": "status"})
        started = time.monotonic()
        async with open_socket(stream_url(gateway, stream_id), headers) as connection:
            for n in range(50):
                await streams.apublish(schema, stream_id, {"type": "tick", "n": n}, final=n == 49)
            messages = await read_all(connection)
        assert [message["seq"] for message in messages] == list(range(1, 52))
        return time.monotonic() - started

    async def run() -> tuple[list[dict[str, Any]], int | None, float]:
        url = stream_url(gateway, stalled_stream)
        sock = tiny_receive_buffer_socket(url)
        async with open_socket(url, headers, sock=sock, max_queue=1) as connection:
            healthy_seconds = max(await asyncio.gather(*(healthy_reader() for _ in range(5))))
            await asyncio.sleep(2.5)  # reads nothing past the stall limit
            return await read_all(connection), connection.close_code, healthy_seconds

    received, close_code, healthy_seconds = asyncio.run(asyncio.wait_for(run(), 60))
    assert close_code == 4008
    assert len(received) < 151  # it never got to the end
    assert healthy_seconds < 5
    assert metric(platform_url, "aiaas_websocket_send_errors_total") > send_errors_before  # the stalled send


def server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the client's TCP connection is still established
    (Linux /proc; a closed end lingers in FIN_WAIT1 behind the unread bytes)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, remote, state = line.split()[1:4]
                ports = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
                if ports == (server_port, client_port) and state == "01":
                    return True
    return False


def test_a_stalled_reader_whose_close_frame_cannot_leave_is_dropped(
    gateway: str, serving_tenant: TenantFixture, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REALTIME_STALLED_READER_SECONDS = 1.0
    monkeypatch.setattr(consumers, "CLOSE_SECONDS", 0.5)
    schema = serving_tenant.tenant.schema_name
    stream_id = streams.new_stream_id("job")

    async def publish_blobs() -> None:  # 6 MB, more than the socket buffers hold
        for _ in range(150):
            await streams.apublish(schema, stream_id, {"type": "blob", "data": noise(40_000)})

    asyncio.run(publish_blobs())

    async def run() -> bool:
        url = stream_url(gateway, stream_id)
        sock = tiny_receive_buffer_socket(url)
        server_port, client_port = sock.getpeername()[1], sock.getsockname()[1]
        async with open_socket(url, bearer(serving_tenant.admin_key), sock=sock, max_queue=1):
            # Never reads: stalled after 1 s, then the close frame waits behind unread bytes.
            deadline = time.monotonic() + 8
            while server_side_open(server_port, client_port) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return server_side_open(server_port, client_port)

    assert asyncio.run(asyncio.wait_for(run(), 30)) is False


def test_resuming_after_the_final_event_closes_at_once(gateway: str, serving_tenant: TenantFixture) -> None:
    stream_id = logged_stream(serving_tenant, 3)

    messages, close_code = subscribe(
        stream_url(gateway, stream_id, "after=3"), bearer(serving_tenant.admin_key)
    )
    assert messages == []
    assert close_code == 1000
