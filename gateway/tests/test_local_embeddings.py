"""The local embedding model (`local-embed`, run inside the gateway process) through
/v1 with the stock openai SDK, in process, and loaded without the network."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import uuid
from collections.abc import Mapping
from decimal import Decimal

import httpx
import numpy as np
import openai
import pytest
import requests
from django.core.exceptions import ValidationError

from billing.models import UsageEvent
from billing.usage import flush_usage_events
from gateway.providers import ProviderError, local
from gateway.resilience import Deadline
from gateway.transports.inprocess import Embeddings, InProcessGateway
from routing.models import Provider, ProviderKind, ProviderModel
from routing.services import register_local_models
from tenants.selectors import find_usable_api_key
from testing.tenants import TenantFixture

CAT = "the cat sat on the mat"
KITTEN = "a kitten rests on a rug"
REVENUE = "quarterly revenue fell"


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=20)


def post(gateway: str, key: str, body: Mapping[str, object], path: str = "/embeddings") -> httpx.Response:
    return httpx.post(f"{gateway}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=20)


def ledger(request_id: str) -> UsageEvent:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        flush_usage_events(batch_size=1000)
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.1)
    raise AssertionError(f"no usage event for {request_id}")


def test_the_sdk_gets_256_dimension_unit_vectors_with_real_semantics(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    raw = sdk(gateway, serving_tenant.admin_key).embeddings.with_raw_response.create(
        model="local-embed", input=[CAT, KITTEN, REVENUE]
    )
    result = raw.parse()

    vectors = np.array([item.embedding for item in result.data])
    assert result.model == "local-embed"
    assert raw.headers["x-aiaas-model"] == "local-embed"
    assert [item.index for item in result.data] == [0, 1, 2]
    assert vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.1
    tokens = local.local_model(local.WORDLLAMA_L2_SUPERCAT).model.tokenizer.encode_batch(
        [CAT, KITTEN, REVENUE], add_special_tokens=False
    )
    expected_tokens = sum(sum(encoding.attention_mask) for encoding in tokens)
    assert result.usage.prompt_tokens == result.usage.total_tokens == expected_tokens
    event = ledger(raw.headers["x-request-id"])
    assert (event.status, event.model, event.prompt_tokens, event.completion_tokens) == (
        200,
        "local-embed",
        expected_tokens,
        0,
    )
    assert event.cost_usd == 0
    assert event.estimated is False


def test_base64_and_floats_carry_the_same_vector(gateway: str, serving_tenant: TenantFixture) -> None:
    key = serving_tenant.admin_key
    as_base64 = post(gateway, key, {"model": "local-embed", "input": CAT, "encoding_format": "base64"})
    as_floats = post(gateway, key, {"model": "local-embed", "input": CAT, "encoding_format": "float"})

    assert (as_base64.status_code, as_floats.status_code) == (200, 200)
    decoded = np.frombuffer(base64.b64decode(as_base64.json()["data"][0]["embedding"]), dtype="<f4")
    assert decoded.shape == (256,)
    assert np.array_equal(decoded, np.array(as_floats.json()["data"][0]["embedding"], dtype=np.float32))


def test_dimensions_truncate_to_a_nested_unit_vector(gateway: str, serving_tenant: TenantFixture) -> None:
    client = sdk(gateway, serving_tenant.admin_key)
    full = np.array(client.embeddings.create(model="local-embed", input=CAT).data[0].embedding)
    short = np.array(
        client.embeddings.create(model="local-embed", input=CAT, dimensions=128).data[0].embedding
    )

    assert short.shape == (128,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(short, full[:128] / np.linalg.norm(full[:128]), atol=1e-5)


def test_dimensions_the_local_model_cannot_give_are_a_400(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    response = post(
        gateway, serving_tenant.admin_key, {"model": "local-embed", "input": CAT, "dimensions": 100}
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "`dimensions` must be one of 64, 128, 256 for local-embed.",
        "type": "invalid_request_error",
        "code": "upstream_rejected_request",
        "param": None,
    }


def test_an_input_over_the_context_window_is_a_400(gateway: str, serving_tenant: TenantFixture) -> None:
    response = post(
        gateway, serving_tenant.admin_key, {"model": "local-embed", "input": ["ok", "cat " * 9000]}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["message"] == "input[1] has 9001 tokens; the model takes at most 8192"


def test_chat_with_the_embedding_model_is_refused(gateway: str, serving_tenant: TenantFixture) -> None:
    body = {"model": "local-embed", "messages": [{"role": "user", "content": "Hi"}]}
    response = post(gateway, serving_tenant.admin_key, body, "/chat/completions")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "the model `local-embed` does not serve chat completions",
        "type": "invalid_request_error",
        "code": "model_not_capable",
        "param": "model",
    }


def test_auto_chat_never_routes_to_the_embedding_model(gateway: str, serving_tenant: TenantFixture) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    response = post(gateway, serving_tenant.admin_key, body, "/chat/completions")

    assert response.status_code == 200
    assert response.headers["x-aiaas-model"].startswith("sim-")


def test_token_arrays_to_the_local_model_are_a_400(gateway: str, serving_tenant: TenantFixture) -> None:
    """Token ids are another tokenizer's (tiktoken's, for OpenAI's SDKs): wordllama cannot read them."""
    for tokens in ([15339, 1917], [[15339, 1917], [1, 2]]):
        response = post(gateway, serving_tenant.admin_key, {"model": "local-embed", "input": tokens})

        assert response.status_code == 400
        assert response.json()["error"] == {
            "message": "the model `local-embed` embeds text, not token arrays",
            "type": "invalid_request_error",
            "code": "model_not_capable",
            "param": "model",
        }


def test_auto_embeds_token_arrays_with_a_model_that_reads_them(
    gateway: str, serving_tenant: TenantFixture
) -> None:
    """LangChain's OpenAIEmbeddings sends token arrays by default: `auto` must not pick local-embed."""
    client = sdk(gateway, serving_tenant.admin_key)

    tokens = client.embeddings.create(model="auto", input=[[15339, 1917], [1, 2]])
    text = client.embeddings.create(model="auto", input="hello world")

    assert tokens.model.startswith("sim-")
    assert len(tokens.data) == 2
    assert text.model == "local-embed"


def test_in_process_embeddings_use_the_local_model(platform_url: str, serving_tenant: TenantFixture) -> None:
    api_key = find_usable_api_key(serving_tenant.admin_key)
    assert api_key is not None
    request_id = f"req_{uuid.uuid4().hex}"

    async def call() -> Embeddings:
        gateway = InProcessGateway()
        try:
            return await gateway.embeddings(
                api_key, {"model": "local-embed", "input": [CAT, KITTEN]}, request_id
            )
        finally:
            await gateway.aclose()

    embeddings = asyncio.run(call())

    assert embeddings.model_id == "local-embed"
    assert [len(vector) for vector in embeddings.vectors] == [256, 256]
    assert embeddings.cost_usd == Decimal(0)
    assert ledger(request_id).prompt_tokens == embeddings.prompt_tokens == 6 + 8


def test_an_expired_deadline_stops_the_model_between_batches() -> None:
    embedder = local.local_model(local.WORDLLAMA_L2_SUPERCAT)

    with pytest.raises(ProviderError) as stopped:
        embedder.embed([CAT], 256, 8192, Deadline(0.0))

    assert stopped.value.kind == "timeout"


def test_batches_hold_at_most_the_padded_token_budget() -> None:
    texts = ["x" * 999] * 200 + ["y" * 40_000, "z"]

    slices = list(local.batches(texts))

    assert slices[0] == (0, 64)
    assert slices[-2:] == [(200, 201), (201, 202)]
    assert [stop for _, stop in slices] == sorted(stop for _, stop in slices)
    assert all(
        (stop - start) * max(len(t) + 1 for t in texts[start:stop]) <= local.BATCH_TOKENS
        for start, stop in slices
        if stop - start > 1
    )


def test_the_model_loads_without_the_network(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the local model reached for the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(requests, "get", refuse)

    embedder = local.load_wordllama()
    embedded = embedder.embed([CAT, REVENUE], 64, 8192, Deadline(10.0))

    assert embedded.vectors.shape == (2, 64)
    assert embedded.prompt_tokens == 6 + 5


@pytest.mark.parametrize(("kind", "valid"), [(ProviderKind.LOCAL, True), (ProviderKind.OPENAI, False)])
def test_only_a_local_provider_may_have_no_base_url(kind: str, valid: bool) -> None:
    provider = Provider(slug="p", name="P", kind=kind, base_url="")

    if valid:
        provider.clean()
    else:
        with pytest.raises(ValidationError) as refused:
            provider.clean()
        assert refused.value.message_dict == {
            "base_url": ["An OpenAI-compatible provider needs its base URL."]
        }


def test_registering_the_local_models_again_keeps_what_staff_changed(registry: str, db: None) -> None:
    ProviderModel.objects.filter(model_id="local-embed").update(input_price_per_million=Decimal("0.01"))

    provider = register_local_models()

    assert (provider.slug, provider.kind, provider.base_url) == ("local", ProviderKind.LOCAL, "")
    model = ProviderModel.objects.get(model_id="local-embed")
    assert (model.upstream_model, model.supports_chat, model.supports_embeddings) == (
        "wordllama-l2-supercat-256",
        False,
        True,
    )
    assert model.input_price_per_million == Decimal("0.01")
    assert Provider.objects.filter(slug="local").count() == 1
