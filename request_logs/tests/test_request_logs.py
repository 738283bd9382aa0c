"""Request logging: queued by the gateway, flushed exactly once into the tenant's own
schema (never another's, never public), purged after the tenant's retention, and
readable only by the tenant's admin keys.

Each test queues on a stream of its own, so tests (and a developer's running
server) never see each other's entries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from aiaas.stream_queue import CONSUMER_GROUP
from request_logs import tasks
from request_logs.models import RequestLog
from request_logs.services import (
    MAX_REQUEST_BODY_BYTES,
    MAX_RESPONSE_TEXT_BYTES,
    RequestLogQueueUnavailableError,
    answer_text,
    dead_stream_of,
    flush_request_logs,
    purge_expired_request_logs,
    queue_request_log,
)
from request_logs.tests.factories import make_request_log
from tenants.models import ApiKeyScope, Tenant
from tenants.services import create_api_key
from testing.tenants import TenantFixture

LOGS_URL = "/api/v1/request-logs"
CREATED_AT = datetime(2026, 11, 27, 12, 30, 15, 123456, tzinfo=UTC)


# Helpers


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def log_fields(tenant: TenantFixture, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "tenant_id": tenant.tenant.pk,
        "schema_name": tenant.tenant.schema_name,
        "request_id": f"req_{uuid.uuid4().hex}",
        "api_key_id": tenant.provisioned.issued_key.api_key.pk,
        "model": "sim-small",
        "request_body": {"model": "sim-small", "messages": [{"role": "user", "content": "What is 2+2?"}]},
        "response_text": "4",
        "status": 200,
        "created_at": CREATED_AT,
    }
    return {**values, **fields}


def queue(stream: str, *logs: dict[str, Any]) -> None:
    """Queue as the gateway does, from an event loop through an asyncio client."""

    async def produce() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            for fields in logs:
                await queue_request_log(client, stream=stream, **fields)
        finally:
            await client.aclose()

    asyncio.run(produce())


def turn_logging_on(*tenants: TenantFixture) -> None:
    Tenant.objects.filter(pk__in=[t.tenant.pk for t in tenants]).update(request_logging_enabled=True)


def stored(tenant: TenantFixture) -> list[dict[str, Any]]:
    with tenant_context(tenant.tenant):
        rows = RequestLog.objects.order_by("id").values(
            "request_id", "api_key_id", "model", "request_body", "response_text", "status", "created_at"
        )
        return [dict(row) for row in rows]


def request_ids_in(tenant: TenantFixture) -> list[str]:
    return [row["request_id"] for row in stored(tenant)]


def queue_state(stream: str) -> tuple[int, int]:
    """(entries in the stream, entries read and not acknowledged)."""
    with redis_client() as client:
        return client.xlen(stream), client.xpending(stream, CONSUMER_GROUP)["pending"]


def dead_entries(stream: str) -> list[dict[bytes, bytes]]:
    with redis_client() as client:
        return [fields for _, fields in client.xrange(dead_stream_of(stream))]


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"test-request-logs:{uuid.uuid4().hex}"
    yield name
    with redis_client() as client:
        client.delete(name, dead_stream_of(name))


# Queueing and flushing


def test_a_queued_log_lands_in_its_own_tenants_schema_only(
    tenant: TenantFixture, other_tenant: TenantFixture, stream: str
) -> None:
    turn_logging_on(tenant, other_tenant)
    alpha = log_fields(tenant)
    beta = log_fields(other_tenant, response_text="five", status=502, api_key_id=None)
    queue(stream, alpha, beta)

    assert flush_request_logs(stream=stream) == 2

    assert stored(tenant) == [
        {
            "request_id": alpha["request_id"],
            "api_key_id": alpha["api_key_id"],
            "model": "sim-small",
            "request_body": alpha["request_body"],
            "response_text": "4",
            "status": 200,
            "created_at": CREATED_AT,
        }
    ]
    assert request_ids_in(other_tenant) == [beta["request_id"]]
    assert stored(other_tenant)[0]["api_key_id"] is None
    with schema_context("public"):
        assert "request_logs_requestlog" not in connection.introspection.table_names()
    assert queue_state(stream) == (0, 0)
    assert dead_entries(stream) == []


def test_flushing_again_stores_nothing_twice(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    first = log_fields(tenant)
    queue(stream, first)
    assert flush_request_logs(stream=stream) == 1

    # The same request queued again (a retried settle, say) and a flush with nothing new.
    queue(stream, first)
    assert flush_request_logs(stream=stream) == 1
    assert flush_request_logs(stream=stream) == 0

    assert request_ids_in(tenant) == [first["request_id"]]
    assert queue_state(stream) == (0, 0)
    assert dead_entries(stream) == []


def test_entries_a_dead_flusher_left_pending_are_stored_once(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    logs = [log_fields(tenant) for _ in range(3)]
    queue(stream, *logs)
    flush_request_logs(stream=stream, batch_size=1)  # stored the first one and acknowledged it
    with redis_client() as client:
        # A flusher that read the other two, stored one of them, and died before acknowledging.
        client.xreadgroup(CONSUMER_GROUP, "died", {stream: ">"}, count=2)
    with tenant_context(tenant.tenant):
        RequestLog.objects.create(
            **{k: v for k, v in logs[1].items() if k not in ("tenant_id", "schema_name")}
        )
    assert queue_state(stream) == (2, 2)

    assert flush_request_logs(stream=stream, claim_idle_ms=0) == 2

    assert request_ids_in(tenant) == [log["request_id"] for log in logs]
    assert queue_state(stream) == (0, 0)
    assert dead_entries(stream) == []


def test_a_tenant_with_logging_off_gets_nothing_stored_and_no_content_is_kept(
    tenant: TenantFixture, stream: str
) -> None:
    log = log_fields(tenant, response_text="a secret answer")
    queue(stream, log)

    assert flush_request_logs(stream=stream) == 1

    assert stored(tenant) == []
    assert queue_state(stream) == (0, 0)
    [dead] = dead_entries(stream)
    assert set(dead) == {b"request_id", b"tenant_id", b"schema_name", b"dead_reason", b"dead_source_id"}
    assert dead[b"request_id"] == log["request_id"].encode()
    assert dead[b"dead_reason"] == b"the tenant turned request logging off"


def test_logging_turned_off_after_queueing_drops_what_was_queued(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    queue(stream, log_fields(tenant))
    Tenant.objects.filter(pk=tenant.tenant.pk).update(request_logging_enabled=False)

    assert flush_request_logs(stream=stream) == 1

    assert stored(tenant) == []


def test_an_entry_naming_a_schema_not_of_its_tenant_or_public_is_dropped(
    tenant: TenantFixture, other_tenant: TenantFixture, stream: str
) -> None:
    turn_logging_on(tenant, other_tenant)
    gone = log_fields(tenant, schema_name="tenant_deleted_long_ago")
    mismatched = log_fields(other_tenant, schema_name=tenant.tenant.schema_name)
    public = log_fields(tenant, schema_name="public", tenant_id=Tenant.objects.get(schema_name="public").pk)
    queue(stream, gone, mismatched, public)

    assert flush_request_logs(stream=stream) == 3

    assert (stored(tenant), stored(other_tenant)) == ([], [])
    assert [dead[b"dead_reason"] for dead in dead_entries(stream)] == [
        b"no tenant of this id has this schema"
    ] * 3


def test_a_malformed_entry_is_set_aside_without_holding_up_the_rest(
    tenant: TenantFixture, stream: str
) -> None:
    turn_logging_on(tenant)
    good = log_fields(tenant)
    with redis_client() as client:
        client.xadd(stream, {"v": "1", "request_id": "req_broken", "status": "teapot"})
    queue(stream, good)

    assert flush_request_logs(stream=stream) == 2

    assert request_ids_in(tenant) == [good["request_id"]]
    [dead] = dead_entries(stream)
    assert dead[b"request_id"] == b"req_broken"
    assert dead[b"dead_reason"].startswith(b"malformed: ")


def test_a_long_request_and_answer_are_stored_cut_with_a_marker(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    prompt = "x" * (300 * 1024)
    answer = "é" * (200 * 1024)  # 400 KiB of UTF-8, two bytes a character
    body = {"model": "sim-small", "messages": [{"role": "user", "content": prompt}]}
    queue(stream, log_fields(tenant, request_body=body, response_text=answer))

    flush_request_logs(stream=stream)

    [row] = stored(tenant)
    original = orjson.dumps(body)
    assert set(row["request_body"]) == {"truncated", "original_bytes", "head"}
    assert row["request_body"]["truncated"] is True
    assert row["request_body"]["original_bytes"] == len(original)
    assert original.decode().startswith(row["request_body"]["head"])
    assert MAX_REQUEST_BODY_BYTES - 1024 < len(orjson.dumps(row["request_body"])) <= MAX_REQUEST_BODY_BYTES
    text = row["response_text"]
    kept = text[: text.index("\n[truncated: ")]
    assert answer.startswith(kept)
    assert (
        text
        == f"{kept}\n[truncated: {len(answer.encode()) - len(kept.encode())} of {400 * 1024} bytes omitted]"
    )
    assert MAX_RESPONSE_TEXT_BYTES - 100 < len(text.encode()) <= MAX_RESPONSE_TEXT_BYTES


def test_a_body_of_quotes_is_cut_to_fit_once_escaped(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    body = {"messages": [{"role": "user", "content": '"' * (300 * 1024)}]}
    queue(stream, log_fields(tenant, request_body=body))

    flush_request_logs(stream=stream)

    [row] = stored(tenant)
    assert row["request_body"]["truncated"] is True
    assert len(orjson.dumps(row["request_body"])) <= MAX_REQUEST_BODY_BYTES
    assert orjson.dumps(body).decode().startswith(row["request_body"]["head"])


def test_nul_characters_are_stored_as_replacement_characters(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    body = {"messages": [{"role": "user", "content": "a\x00b", "name": "literal \\u0000 text"}]}
    queue(stream, log_fields(tenant, request_body=body, response_text="c\x00d"))

    flush_request_logs(stream=stream)

    [row] = stored(tenant)
    assert row["request_body"] == {
        "messages": [{"role": "user", "content": "a\ufffdb", "name": "literal \\u0000 text"}]
    }
    assert row["response_text"] == "c\ufffdd"


def test_the_answer_text_is_the_message_content_and_any_tool_calls() -> None:
    tool_calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]

    assert answer_text({"choices": [{"message": {"role": "assistant", "content": "4"}}]}) == "4"
    assert answer_text({"choices": [{"message": {"content": None, "tool_calls": tool_calls}}]}) == (
        orjson.dumps(tool_calls).decode()
    )
    assert answer_text({"choices": []}) == ""


def test_queueing_fails_with_a_clear_error_when_redis_is_down(tenant: TenantFixture) -> None:
    log = log_fields(tenant)

    async def queue_without_redis() -> None:
        client = aioredis.Redis.from_url("unix:///nonexistent/redis.sock", socket_connect_timeout=1)
        try:
            await queue_request_log(client, **log)
        finally:
            await client.aclose()

    with pytest.raises(
        RequestLogQueueUnavailableError, match=f"request log {log['request_id']} was not queued"
    ):
        asyncio.run(queue_without_redis())


def test_the_flush_task_drains_the_queue_in_batches(tenant: TenantFixture, stream: str) -> None:
    turn_logging_on(tenant)
    logs = [log_fields(tenant) for _ in range(5)]
    queue(stream, *logs)

    assert tasks.flush(batch_size=2, stream=stream) == 5

    assert sorted(request_ids_in(tenant)) == sorted(log["request_id"] for log in logs)
    assert queue_state(stream) == (0, 0)


# Retention


def test_purging_keeps_each_tenants_logs_for_its_own_retention(
    tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    Tenant.objects.filter(pk=other_tenant.tenant.pk).update(request_log_retention_days=7)
    now = timezone.now()
    for fixture in (tenant, other_tenant):
        for days in (1, 10, 40):
            make_request_log(fixture, request_id=f"req_{days}d", created_at=now - timedelta(days=days))

    assert tasks.purge() == 3

    assert request_ids_in(tenant) == ["req_1d", "req_10d"]
    assert request_ids_in(other_tenant) == ["req_1d"]
    assert purge_expired_request_logs() == 0


# REST


def test_the_list_shows_only_this_tenants_logs_newest_first(
    api_client: APIClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    older = make_request_log(tenant, request_id="req_older")
    newer = make_request_log(tenant, request_id="req_newer", api_key_id=None, status=429)
    make_request_log(other_tenant, request_id="req_outsider")

    response = api_client.get(LOGS_URL)

    assert response.status_code == 200
    body = response.json()
    assert [item["request_id"] for item in body["data"]] == ["req_newer", "req_older"]
    assert (body["object"], body["first_id"], body["last_id"], body["has_more"]) == (
        "list",
        newer.pk,
        older.pk,
        False,
    )
    assert body["data"][0] == {
        "object": "request_log",
        "id": newer.pk,
        "request_id": "req_newer",
        "api_key_id": None,
        "model": "sim-small",
        "status": 429,
        "request_body": {"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}]},
        "response_text": "Hello!",
        "created_at": newer.created_at.isoformat().replace("+00:00", "Z"),
    }
    page = api_client.get(LOGS_URL, {"limit": 1, "after": newer.pk}).json()
    assert [item["request_id"] for item in page["data"]] == ["req_older"]


def test_one_log_is_read_by_its_id(api_client: APIClient, tenant: TenantFixture) -> None:
    log = make_request_log(tenant, request_id="req_one")

    response = api_client.get(f"{LOGS_URL}/{log.pk}")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["request_id"]) == (log.pk, "req_one")


def test_a_key_without_the_admin_scope_cannot_read_logs(tenant: TenantFixture) -> None:
    log = make_request_log(tenant)
    issued = create_api_key(tenant.tenant, name="reader", scopes=[ApiKeyScope.READ, ApiKeyScope.INFERENCE])
    client = tenant.api_client(issued.secret)

    listed, one = client.get(LOGS_URL), client.get(f"{LOGS_URL}/{log.pk}")

    assert (listed.status_code, one.status_code) == (403, 403)
    assert listed.json()["error"]["type"] == "permission_error"
    assert "Hello!" not in str(listed.content) + str(one.content)


def test_another_tenants_key_gets_404_for_a_log_id(outsider_client: APIClient, tenant: TenantFixture) -> None:
    log = make_request_log(tenant)

    foreign = outsider_client.get(f"{LOGS_URL}/{log.pk}")
    nonexistent = outsider_client.get(f"{LOGS_URL}/987654321")

    assert foreign.status_code == 404
    assert foreign.content == nonexistent.content
    assert outsider_client.get(LOGS_URL).json()["data"] == []


def test_a_request_without_a_key_is_refused(tenant: TenantFixture) -> None:
    response = APIClient().get(LOGS_URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
