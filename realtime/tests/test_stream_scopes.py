"""/ws/v1/streams/<stream_id> asks what the REST resource behind the stream asks
(realtime/stream_access.py): an agent run's stream needs the admin scope, as
/api/v1/runs does; a chat completion's needs `inference`, as /v1 does."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from django_tenants.utils import tenant_context
from websockets.exceptions import InvalidStatus

from agents import services as agents
from agents.tests.factories import simple_spec
from flags import cache as flag_cache
from flags.services import set_tenant_override
from realtime import streams
from realtime.tests.clients import bearer, open_socket
from realtime.tests.test_stream_socket import mint, refusal, stream_url, subscribe
from realtime.tokens import StreamTokenClaims, mint_stream_token_sync
from tenants.models import ApiKeyScope
from tenants.services import IssuedApiKey, create_api_key
from testing.database import committed
from testing.tenants import TenantFixture

RUN_SCOPE_MESSAGE = (
    "This API key lacks the `admin` scope, which reading this stream needs, as GET /api/v1/runs/{id} does."
)


def key_with(tenant: TenantFixture, scope: ApiKeyScope) -> IssuedApiKey:
    return committed(lambda: create_api_key(tenant.tenant, name=f"streams-{scope}", scopes=[scope]))


def logged(tenant: TenantFixture, kind: str) -> str:
    stream_id = streams.new_stream_id(kind)
    streams.publish(tenant.tenant.schema_name, stream_id, {"type": "progress"}, final=True)
    return stream_id


def run_stream(tenant: TenantFixture) -> str:
    """The stream of a real agent run, queued (its first event, run.queued, is on it)."""

    def create() -> str:
        with tenant_context(tenant.tenant):
            agent = agents.create_agent(simple_spec())
            version = agents.runnable_version(agent)
            run = agents.create_run(version, {"text": "hello"}, tenant.provisioned.issued_key.api_key)
            return run.stream_id

    return committed(create)


def first_events(url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with open_socket(url, headers) as connection:
            return [orjson.loads(await connection.recv())]

    return asyncio.run(asyncio.wait_for(run(), 30))


def refused_body(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async def run() -> None:
        async with open_socket(url, headers):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    return refused.value.response.status_code, orjson.loads(refused.value.response.body)


def test_a_run_stream_refuses_a_key_without_the_admin_scope(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id = run_stream(serving_tenant)
    inference = key_with(serving_tenant, ApiKeyScope.INFERENCE).secret
    read_only = key_with(serving_tenant, ApiKeyScope.READ).secret

    assert refused_body(stream_url(gateway, stream_id), bearer(inference)) == (
        403,
        {
            "error": {
                "message": RUN_SCOPE_MESSAGE,
                "type": "permission_error",
                "code": "insufficient_scope",
                "param": None,
            }
        },
    )
    assert refusal(stream_url(gateway, stream_id), bearer(read_only)) == (403, "insufficient_scope")
    # A token naming the stream is refused when minted, where a server can read why;
    # one naming none is refused at the handshake.
    for_the_stream = mint(gateway, inference, purpose="streams", stream_id=stream_id)
    assert (for_the_stream.status_code, for_the_stream.json()["error"]["message"]) == (403, RUN_SCOPE_MESSAGE)
    token = mint(gateway, inference, purpose="streams").json()["token"]
    assert refusal(stream_url(gateway, stream_id, f"token={token}")) == (403, "insufficient_scope")


def test_a_run_stream_opens_for_an_admin_key_and_its_token(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id = run_stream(serving_tenant)

    by_key = first_events(stream_url(gateway, stream_id), bearer(serving_tenant.admin_key))
    token = mint(gateway, serving_tenant.admin_key, purpose="streams", stream_id=stream_id).json()["token"]
    by_token = first_events(stream_url(gateway, stream_id, f"token={token}"))

    assert [(event["seq"], event["type"]) for event in by_key + by_token] == [(1, "run.queued")] * 2


def test_another_tenants_admin_key_and_token_get_404(
    gateway: str, serving_tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    stream_id = run_stream(serving_tenant)
    token = mint(gateway, other_tenant.admin_key, purpose="streams", stream_id=stream_id).json()["token"]

    assert refusal(stream_url(gateway, stream_id), bearer(other_tenant.admin_key)) == (
        404,
        "stream_not_found",
    )
    assert refusal(stream_url(gateway, stream_id, f"token={token}")) == (404, "stream_not_found")


def test_a_chat_stream_needs_the_inference_scope(gateway: str, serving_tenant: TenantFixture) -> None:
    stream_id = logged(serving_tenant, "chat")
    inference = key_with(serving_tenant, ApiKeyScope.INFERENCE).secret
    read_only = key_with(serving_tenant, ApiKeyScope.READ).secret

    messages, _ = subscribe(stream_url(gateway, stream_id), bearer(inference))
    assert [message["seq"] for message in messages] == [1]
    assert refusal(stream_url(gateway, stream_id), bearer(read_only)) == (403, "insufficient_scope")


def test_a_stream_of_an_unlisted_kind_needs_the_admin_scope(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id = logged(serving_tenant, "job")
    inference = key_with(serving_tenant, ApiKeyScope.INFERENCE).secret

    assert refusal(stream_url(gateway, stream_id), bearer(inference)) == (403, "insufficient_scope")


def test_a_token_a_dashboard_page_minted_for_one_stream_reads_it_with_an_inference_key(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    """The Knowledge and Evals pages follow progress streams for signed-in members, with
    a token acting as the inference key the work is attributed to (the page checked
    the member)."""
    stream_id, other_stream = logged(serving_tenant, "ingest"), logged(serving_tenant, "ingest")
    inference = key_with(serving_tenant, ApiKeyScope.INFERENCE).api_key

    def page_token(for_stream: str | None) -> str:
        claims = StreamTokenClaims(
            tenant_id=serving_tenant.tenant.pk,
            schema_name=serving_tenant.tenant.schema_name,
            api_key_id=inference.pk,
            purpose="streams",
            stream_id=for_stream,
            page_checked=True,
        )
        return str(mint_stream_token_sync(claims)["token"])

    messages, _ = subscribe(stream_url(gateway, stream_id, f"token={page_token(stream_id)}"))
    assert [message["seq"] for message in messages] == [1]
    # Vouched for one stream only: a page token naming none is the key's own.
    assert refusal(stream_url(gateway, other_stream, f"token={page_token(None)}")) == (
        403,
        "insufficient_scope",
    )


def test_a_run_stream_is_refused_where_the_agents_feature_is_off(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    stream_id = logged(serving_tenant, "run")

    def turn_agents(enabled: bool | None) -> None:
        committed(lambda: set_tenant_override("agents", serving_tenant.tenant, enabled, actor="test"))
        flag_cache.forget()  # this process serves the sockets: no wait for the announcement

    turn_agents(False)
    try:
        assert refused_body(stream_url(gateway, stream_id), bearer(serving_tenant.admin_key)) == (
            403,
            {
                "error": {
                    "message": "The 'agents' feature is not enabled for this workspace.",
                    "type": "permission_error",
                    "code": "feature_disabled",
                    "param": None,
                }
            },
        )
    finally:
        turn_agents(None)
    events = first_events(stream_url(gateway, stream_id), bearer(serving_tenant.admin_key))
    assert [event["seq"] for event in events] == [1]
