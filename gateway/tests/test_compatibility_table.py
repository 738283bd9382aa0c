"""docs/compatibility.md stays true: its endpoint rows against the served gateway,
its parameter rows against the validator, and every parameter the validator
knows has a row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from gateway import responses_mapping
from gateway.errors import GatewayError
from gateway.validation import CHAT_FIELDS, EMBEDDINGS_FIELDS, validate_chat, validate_embeddings
from testing.tenants import TenantFixture

DOCUMENT = Path(settings.BASE_DIR) / "docs" / "compatibility.md"
ROW = re.compile(r"^\| `(?P<item>[^`]+)` \| (?P<status>supported|passed through|refused|not implemented) \|")
CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}
EMBEDDINGS = {"model": "sim-small", "input": "hi"}
RESPONSES = {"model": "sim-small", "input": "hi"}
# A value of each Responses parameter as a client would send it.
RESPONSES_SAMPLES: dict[str, Any] = {
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
    "instructions": "Be brief.",
    "previous_response_id": "resp_1",
    "store": False,
    "stream": True,
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "tool_choice": {"type": "function", "name": "f"},
    "parallel_tool_calls": False,
    "max_output_tokens": 16,
    "temperature": 0.2,
    "top_p": 0.9,
    "text": {"format": {"type": "json_object"}},
    "reasoning": {"effort": "low"},
    "metadata": {"team": "a"},
    "user": "someone",
    "include": ["message.output_text.logprobs"],
    "background": True,
    "conversation": "conv_1",
    "truncation": "auto",
    "prompt": {"id": "pmpt_1"},
}
# A value of each parameter as a client would send it.
SAMPLES: dict[str, Any] = {
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_completion_tokens": 5,
    "max_tokens": 5,
    "n": 2,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "logprobs": True,
    "top_logprobs": 2,
    "response_format": {"type": "json_object"},
    "seed": 7,
    "stop": ["\n"],
    "user": "someone",
    "reasoning_effort": "low",
    "temperature": 0.2,
    "top_p": 0.9,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "logit_bias": {"50256": -100},
    "metadata": {"team": "a"},
    "store": False,
    "service_tier": "auto",
    "modalities": ["text"],
    "audio": {"voice": "alloy", "format": "mp3"},
    "prediction": {"type": "content", "content": "x"},
    "prompt_cache_key": "k",
    "prompt_cache_retention": "24h",
    "safety_identifier": "s",
    "verbosity": "low",
    "web_search_options": {},
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "function_call": "auto",
    "input": [[1, 2, 3], "text"],
    "encoding_format": "base64",
    "dimensions": 16,
}


def rows(section: str) -> list[tuple[str, str]]:
    """The (item, status) rows of a `## section` table."""
    text = DOCUMENT.read_text(encoding="utf-8").split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [(match["item"], match["status"]) for line in text.splitlines() if (match := ROW.match(line))]


def test_every_parameter_the_validator_knows_has_a_row() -> None:
    assert {item for item, _ in rows("Chat completion parameters")} == set(CHAT_FIELDS)
    assert {item for item, _ in rows("Embeddings parameters")} == set(EMBEDDINGS_FIELDS)


@pytest.mark.parametrize(("parameter", "status"), rows("Chat completion parameters"))
def test_a_chat_parameter_row_is_what_the_validator_does(parameter: str, status: str) -> None:
    body = {**CHAT, parameter: SAMPLES.get(parameter, CHAT.get(parameter))}
    assert status in {"supported", "passed through"}
    assert validate_chat(body).body[parameter] == body[parameter]


@pytest.mark.parametrize(("parameter", "status"), rows("Embeddings parameters"))
def test_an_embeddings_parameter_row_is_what_the_validator_does(parameter: str, status: str) -> None:
    body = {**EMBEDDINGS, parameter: SAMPLES.get(parameter, EMBEDDINGS.get(parameter))}
    assert status in {"supported", "passed through"}
    assert validate_embeddings(body).body[parameter] == body[parameter]


def test_any_other_field_is_refused_as_the_tables_say() -> None:
    with pytest.raises(GatewayError) as chat_error:
        validate_chat({**CHAT, "temprature": 1})
    with pytest.raises(GatewayError) as embeddings_error:
        validate_embeddings({**EMBEDDINGS, "truncate": True})

    assert chat_error.value.status == embeddings_error.value.status == 400
    assert chat_error.value.message == "Unrecognized request argument supplied: temprature"


ENDPOINTS = rows("Endpoints") + rows("Responses, batches and files")


@pytest.mark.parametrize(("endpoint", "status"), ENDPOINTS)
def test_an_endpoint_row_is_what_the_gateway_serves(
    gateway: str, tenant: TenantFixture, endpoint: str, status: str
) -> None:
    method, path = endpoint.split(" ", 1)
    url = gateway.removesuffix("/v1") + path.replace("{model}", "sim-small")
    body = (
        EMBEDDINGS
        if path.endswith("embeddings")
        else RESPONSES
        if path.endswith(("responses", "input_tokens"))
        else CHAT
    )
    response = httpx.request(
        method,
        url,
        json=body if method == "POST" else None,
        # Django serves some /v1 resources (files, batches): it answers the hosts it knows.
        headers={"authorization": f"Bearer {tenant.admin_key}", "host": settings.BASE_DOMAIN},
        timeout=20,
    )

    if status == "supported":
        assert response.status_code == 200, response.text
    else:
        assert status == "not implemented"
        assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_url")


def test_every_responses_field_has_a_row() -> None:
    assert {item for item, _ in rows("Responses parameters")} >= responses_mapping.FIELDS


@pytest.mark.parametrize(("parameter", "status"), rows("Responses parameters"))
def test_a_responses_parameter_row_is_what_the_mapping_does(parameter: str, status: str) -> None:
    body = {**RESPONSES, parameter: RESPONSES_SAMPLES.get(parameter, RESPONSES.get(parameter))}
    if status == "refused":
        with pytest.raises(GatewayError) as refused:
            responses_mapping.parse_create(body)
        assert (refused.value.status, refused.value.param) == (400, parameter)
    else:
        assert status == "supported"
        assert responses_mapping.parse_create(body).body[parameter] == body[parameter]
