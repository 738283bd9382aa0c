"""The /v1 API through the official openai SDK and raw HTTP, over real servers."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import openai
import orjson
import pytest
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from gateway.simulated.provider import ChatMessage, answer_words
from gateway.tests.keys import small_only_key
from tenants.models import ApiKeyScope
from tenants.services import create_api_key, revoke_api_key
from testing.database import committed
from testing.tenants import TenantFixture

PROMPT = "Say something about tenancy."
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


# What the simulated provider answers to MESSAGES, uncut (the same for every model).
EXPECTED = " ".join(answer_words([ChatMessage("user", PROMPT)]))


def test_the_sdk_lists_auto_the_local_and_the_simulated_models(gateway: str, tenant: TenantFixture) -> None:
    models = {model.id: model for model in sdk(gateway, tenant.admin_key).models.list()}

    assert list(models) == ["auto", "local-embed", "sim-small", "sim-medium", "sim-large"]
    assert {models[name].owned_by for name in ("sim-small", "sim-medium", "sim-large")} == {"aiaas-simulated"}
    assert models["local-embed"].owned_by == "local"
    assert models["local-embed"].model_extra == {
        "aiaas": {"tier": 1, "simulated": False, "context_window": 8192, "chat": False, "embeddings": True}
    }


def test_a_completion_through_the_sdk_names_what_served_it(gateway: str, tenant: TenantFixture) -> None:
    raw = sdk(gateway, tenant.admin_key).chat.completions.with_raw_response.create(
        model="sim-medium",
        messages=MESSAGES,
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == EXPECTED
    assert completion.model == "sim-medium"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(EXPECTED.split())
    assert raw.headers["x-aiaas-model"] == "sim-medium"
    assert raw.headers["x-aiaas-tier"] == "2"
    assert raw.headers["x-request-id"].startswith("req_")
    assert float(raw.headers["x-aiaas-overhead-ms"]) >= 0


EASY = "What is the capital of France?"
HARD = "Let p = (1, 2, 5, 4)(2, 3) in S_5 . Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120\nAnswer:"


@pytest.mark.parametrize(("prompt", "tier"), [(EASY, "1"), (HARD, "3")])
def test_auto_is_routed_by_the_learned_router(
    gateway: str, tenant: TenantFixture, prompt: str, tier: str
) -> None:
    raw = sdk(gateway, tenant.admin_key).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": prompt}],
    )

    assert raw.headers["x-aiaas-tier"] == tier
    reason = raw.headers["x-aiaas-route-reason"]
    assert reason.startswith(f"auto global-v1: tier {tier}, P(tier 1 fails) ")
    assert "quality target 0.95" in reason


def test_a_stream_through_the_sdk_is_whole_with_usage(gateway: str, tenant: TenantFixture) -> None:
    stream = sdk(gateway, tenant.admin_key).chat.completions.create(
        model="sim-small",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(EXPECTED.split())


def test_a_raw_stream_ends_with_done(gateway: str, tenant: TenantFixture) -> None:
    body = {"model": "sim-small", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {tenant.admin_key}"}

    with httpx.stream(
        "POST", f"{gateway}/chat/completions", json=body, headers=headers, timeout=20
    ) as response:
        lines = [line for line in response.iter_lines() if line]

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-aiaas-model"] == "sim-small"
    assert lines[-1] == "data: [DONE]"


def test_embeddings_through_the_sdk(gateway: str, tenant: TenantFixture) -> None:
    result = sdk(gateway, tenant.admin_key).embeddings.create(model="sim-small", input=["a", "b"])

    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 64
    assert result.model == "sim-small"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_api_key"),
        ({"authorization": "Bearer aiaas_nope"}, 401, "invalid_api_key"),
        ({"authorization": "Basic abc"}, 401, "invalid_api_key"),
    ],
)
def test_it_refuses_requests_without_a_usable_key(
    gateway: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = httpx.post(
        f"{gateway}/chat/completions",
        json={"model": "auto", "messages": MESSAGES},
        headers=headers,
        timeout=10,
    )

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[]", 400, "invalid_json", None),
        (b'{"model": "auto"}', 400, "missing_required_parameter", "messages"),
        (b'{"model": 7, "messages": []}', 400, "invalid_type", "model"),
        (
            b'{"model": "auto", "messages": [{"role": "robot", "content": "x"}]}',
            400,
            "invalid_value",
            "messages[0].role",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "a\\u0000b"}]}',
            400,
            "invalid_value",
            "messages[0].content",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}',
            400,
            "invalid_type",
            "max_tokens",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "invalid_type",
            "stream",
        ),
        (
            b'{"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
            "model",
        ),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(
    gateway: str, tenant: TenantFixture, payload: bytes, status: int, code: str, param: str | None
) -> None:
    response = httpx.post(
        f"{gateway}/chat/completions",
        content=payload,
        timeout=10,
        headers={"authorization": f"Bearer {tenant.admin_key}", "content-type": "application/json"},
    )

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert set(error) == {"message", "type", "code", "param"}


def test_a_huge_body_gets_413(gateway: str, tenant: TenantFixture) -> None:
    content = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * 3_000_000}]})

    response = httpx.post(
        f"{gateway}/chat/completions",
        content=content,
        timeout=10,
        headers={"authorization": f"Bearer {tenant.admin_key}"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_an_unknown_v1_url_is_a_json_404(gateway: str, tenant: TenantFixture) -> None:
    response = httpx.get(f"{gateway}/nothing", headers={"authorization": f"Bearer {tenant.admin_key}"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_a_revoked_key_stops_working_on_the_gateway_at_once(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="short-lived", scopes=[ApiKeyScope.INFERENCE])
    )
    client = sdk(gateway, issued.secret)
    assert next(m.id for m in client.models.list()) == "auto"  # now cached by the gateway

    committed(lambda: revoke_api_key(issued.api_key))

    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            client.models.list()
        except openai.AuthenticationError:
            return
        time.sleep(0.05)
    pytest.fail("the revoked key still worked 2 s after revocation")


def test_a_key_past_its_expiry_is_refused_with_401_though_the_gateway_cached_it(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    expires_at = timezone.now() + timedelta(seconds=1.5)
    issued = committed(
        lambda: create_api_key(
            serving_tenant.tenant, name="expiring", scopes=[ApiKeyScope.INFERENCE], expires_at=expires_at
        )
    )
    client = sdk(gateway, issued.secret)
    assert next(m.id for m in client.models.list()) == "auto"  # now cached by the gateway

    time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.1)

    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="sim-small", messages=MESSAGES)
    assert refused.value.code == "invalid_api_key"


def test_a_key_without_the_inference_scope_gets_403(gateway: str, serving_tenant: TenantFixture) -> None:
    issued = committed(
        lambda: create_api_key(serving_tenant.tenant, name="read only", scopes=[ApiKeyScope.READ])
    )

    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, issued.secret).models.list()


def test_a_model_outside_the_keys_allow_list_gets_403(gateway: str, serving_tenant: TenantFixture) -> None:
    issued = small_only_key(serving_tenant)
    client = sdk(gateway, issued.secret)

    with pytest.raises(openai.PermissionDeniedError) as error:
        client.chat.completions.create(model="sim-large", messages=MESSAGES)
    assert [m.id for m in client.models.list()] == ["auto", "sim-small"]
    assert error.value.code == "model_not_allowed"
