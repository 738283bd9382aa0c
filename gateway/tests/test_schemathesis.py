"""Schemathesis against the committed OpenAPI document, over the real servers
(docs/openapi.yaml; quality bars 2 and 14).

Every /v1 and /api/v1/keys operation gets generated requests, positive and
negative, from the examples, coverage and fuzzing phases, with a fixed seed and
a bounded number of examples. Each is sent with the tenant's admin key and its
response must:

- not be a 5xx, and match the document: status code, content type, headers
  and body (Schemathesis' checks);
- be a 4xx when the request breaks the document, and a 2xx when it does not,
  unless the refusal is one a schema cannot state (`assert_valid_request_accepted`);
- for `stream: true`, be server-sent events whose every `data:` is a
  chat.completion.chunk, then `[DONE]`; for /v1/responses and /v1/messages, their
  own events from the first to an end event (streams are generated like any other
  request; Schemathesis reads the stream and checks each event's shape).

Each request is then replayed with the other tenant's admin key: no byte of the
first tenant's keys may come back, and an id of the first tenant's answers 404
and changes nothing (`assert_closed_to_outsider`).

The six defects this file first found (a 500 on a non-string enum value,
unchecked `max_tokens` and `include_usage`, 404 instead of 405, DRF-shaped
404s, an undocumented minimum) are fixed; the checks above hold with no
exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeAlias, cast

import httpx
import jsonschema_rs
import orjson
import pytest
import schemathesis
from django.conf import settings
from django.db.models import Max
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pytest_django import DjangoDbBlocker
from schemathesis.checks import CHECKS, CheckFunction, load_all_checks

from tenants.models import ApiKey
from testing.tenants import TenantFixture

Case: TypeAlias = schemathesis.Case[Any]
DOCUMENT = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"
SEED = 20_240_601
EXAMPLES_PER_OPERATION = 25
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # The key and the generated values are test data: report them as sent.
        "output": {"sanitization": {"enabled": False}},
        # The test sends the key itself (the tenant's, then the outsider's).
        "generation": {"with-security-parameters": False, "database": "none"},
        # Read whole streams: each of at most 128 choices (`n`) has a role chunk, at most 64
        # token chunks and a finish chunk; then usage and [DONE].
        "max-stream-events": 128 * (1 + 64 + 1) + 2,
    }
)
SCHEMA = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG).include(path_regex=r"^/(v1/|api/v1/keys/)")
# Django answers /api on any host its ALLOWED_HOSTS names; the test server listens on 127.0.0.1.
API_HOST = settings.BASE_DOMAIN
load_all_checks()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Host": API_HOST}


# Valid requests that may still be refused: rules a schema cannot state.
PROVIDER_REFUSALS = frozenset(
    {
        "upstream_rejected_request",  # pass-through fields are the provider's to judge
        "context_length_exceeded",
        "model_not_capable",  # no model the key may use fits (context window, JSON output)
    }
)


# Rules of /v1/files and /v1/vector_stores a schema cannot state, by the `param` refused:
# which files exist, metadata keys' length, a static chunking overlap (at most half the
# size, and a file's must be its store's), filters that do not fit ours, an empty file.
STORE_REFUSALS = {
    "POST /v1/files": ("file",),
    "POST /v1/vector_stores": ("file_ids", "metadata", "chunking_strategy"),
    "POST /v1/vector_stores/{vector_store_id}": ("metadata",),
    "POST /v1/vector_stores/{vector_store_id}/files": ("attributes", "chunking_strategy"),
    "POST /v1/vector_stores/{vector_store_id}/search": ("filters",),
}


# Rules of POST /v1/responses a schema cannot state: which stored responses exist, a
# json_schema format's `name` and `schema`, what a tool's schema or an item holds.
RESPONSES_REFUSALS = ("previous_response_id", "text.format", "response_format", "tools", "input")


# Rules of POST /v1/messages (and count_tokens) a schema cannot state, by the field its message starts with:
# `tool_choice` any or tool needs `tools`.
MESSAGES_REFUSALS = ("tool_choice:",)


def refusal_is_allowed(label: str, error: dict[str, Any]) -> bool:
    if error.get("code") == "invalid_url":  # a NUL in the URL, refused on every path (aiaas/nul_urls.py)
        return True
    if label in {"POST /v1/messages", "POST /v1/messages/count_tokens"}:  # Anthropic's: no code or param
        return str(error.get("message") or "").startswith(MESSAGES_REFUSALS)
    if label in {"POST /v1/chat/completions", "POST /v1/embeddings"}:
        return error.get("code") in PROVIDER_REFUSALS
    if label in {"POST /v1/responses", "POST /v1/responses/input_tokens"}:
        param = str(error.get("param") or "")
        return error.get("code") in PROVIDER_REFUSALS or param.startswith(RESPONSES_REFUSALS)
    if label == "POST /api/v1/keys/":
        # An expiry must be in the future; allowed models must be the registry's.
        return error.get("param") in {"expires_at", "allowed_models"}
    if label in STORE_REFUSALS:
        return str(error.get("param") or "").startswith(STORE_REFUSALS[label])
    return False


def json_of(response: schemathesis.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def curl(case: Case, response: schemathesis.Response) -> str:
    """The request as sent, key included (a test key)."""
    return case.as_curl_command(headers=dict(response.request.headers))


def sent_method(response: schemathesis.Response) -> str:
    return str(response.request.method).upper()


def nullable_to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema, for validating with jsonschema."""
    if isinstance(schema, list):
        return [nullable_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: nullable_to_json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable") and "type" in schema:
        converted["type"] = [schema["type"], "null"]
    return converted


def component_validator(name: str) -> jsonschema_rs.Validator:
    components = nullable_to_json_schema(SCHEMA.raw_schema["components"])
    return jsonschema_rs.Draft4Validator({"$ref": f"#/components/schemas/{name}", "components": components})


CHUNK = component_validator("ChatCompletionChunk")
ERROR = component_validator("Error")
ANTHROPIC_ERROR = component_validator("AnthropicError")


def server_sent_data(content: bytes) -> list[str]:
    return [
        line.removeprefix(b"data:").strip().decode()
        for line in content.splitlines()
        if line.startswith(b"data:")
    ]


def assert_a_whole_stream(response: schemathesis.Response) -> None:
    """Every event a chunk, then [DONE]; or chunks, then an error event (the stream failed)."""
    assert not response.stream_cut_short
    events = server_sent_data(response.content)
    assert events, response.content
    *chunks, last = events
    for chunk in chunks:
        CHUNK.validate(orjson.loads(chunk))
    if last != "[DONE]":
        ERROR.validate(orjson.loads(last))


RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def assert_a_whole_responses_stream(response: schemathesis.Response) -> None:
    """Responses events numbered from 0, from response.created to one end event."""
    assert not response.stream_cut_short
    events = [orjson.loads(data) for data in server_sent_data(response.content)]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] in RESPONSE_ENDS


MESSAGES_EVENTS_END = frozenset({"message_stop", "error"})


def assert_a_whole_messages_stream(response: schemathesis.Response) -> None:
    """Anthropic's events, each `data` of its event's `type`, from message_start to
    message_stop, or to an error event (the stream failed)."""
    assert not response.stream_cut_short
    events = [
        (line.removeprefix(b"event:").strip().decode(), orjson.loads(data.removeprefix(b"data:")))
        for line, data in pairwise(response.content.splitlines())
        if line.startswith(b"event:") and data.startswith(b"data:")
    ]
    assert all(name == data["type"] for name, data in events), events
    assert events[0][0] == "message_start", events
    assert events[-1][0] in MESSAGES_EVENTS_END, events
    if events[-1][0] == "error":
        ANTHROPIC_ERROR.validate(events[-1][1])


def is_positive(case: Case) -> bool:
    """Every part of the request is valid: the coverage phase may call a case positive
    whose body is valid and one of its headers not (`anthropic-version: 0`), even with
    its header component positive, while it covers another header (Idempotency-Key)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return False
    if not all(component.mode.is_positive for component in case.meta.components.values()):
        return False
    headers: Mapping[str, Any] = case.headers or {}
    return all(header_is_valid(parameter.definition, headers) for parameter in case.operation.headers)


def header_is_valid(definition: dict[str, Any], headers: Mapping[str, Any]) -> bool:
    value, schema = headers.get(definition["name"]), definition.get("schema")
    if value is None or schema is None or "x-original-security-type" in definition:
        return True
    return bool(jsonschema_rs.validator_for(schema).is_valid(str(value)))


def assert_valid_request_accepted(case: Case, response: schemathesis.Response) -> None:
    if not is_positive(case) or response.status_code != 400:
        return
    if sent_method(response) != case.operation.method.upper():
        return
    error = (json_of(response) or {}).get("error", {})
    assert refusal_is_allowed(case.operation.label, error), (
        f"a request the document allows was refused: {curl(case, response)}\n{response.text}"
    )


# Isolation


@dataclass(frozen=True)
class Tenants:
    owner: TenantFixture
    outsider: TenantFixture
    # Keys the suite's other tests use: a generated DELETE must not revoke them.
    protected_ids: frozenset[int]
    # A key of `owner` that generated requests may read and revoke.
    victim_id: int

    def owner_secrets(self) -> list[str]:
        prefixes = ApiKey.objects.filter(tenant=self.owner.tenant).values_list("prefix", flat=True)
        return [*prefixes, self.owner.owner_email, self.owner.admin_key]

    def owner_key_ids(self) -> set[int]:
        return set(ApiKey.objects.filter(tenant=self.owner.tenant).values_list("id", flat=True))


def issued_key_id(tenant: TenantFixture) -> int:
    return tenant.provisioned.issued_key.api_key.pk


@pytest.fixture(scope="module", autouse=True)
def _forget_generated_keys(django_db_setup: object, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """Delete the keys this module's requests create (the server commits them), so later
    tests find both tenants as they were: a key list that fits one page, say."""
    with django_db_blocker.unblock():
        first_new_id = (ApiKey.objects.aggregate(last=Max("id"))["last"] or 0) + 1
    yield
    with django_db_blocker.unblock():
        ApiKey.objects.filter(id__gte=first_new_id).delete()


@pytest.fixture
def tenants(gateway: str, platform_url: str, tenant: TenantFixture, other_tenant: TenantFixture) -> Tenants:
    """The two tenants, with fresh breakers and simulator (`gateway`): earlier fault tests
    must not turn this test's requests into 503s."""
    # Made over HTTP: the server's own transaction commits it, so the server sees it.
    response = httpx.post(
        f"{platform_url}/api/v1/keys",
        json={"name": "schemathesis victim", "scopes": ["read"]},
        headers=auth(tenant.admin_key),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return Tenants(
        owner=tenant,
        outsider=other_tenant,
        protected_ids=frozenset({issued_key_id(tenant), issued_key_id(other_tenant)}),
        victim_id=response.json()["id"],
    )


ID_PATTERN = re.compile(r"[0-9]+")


def path_id(case: Case) -> int | None:
    value = (case.path_parameters or {}).get("id")
    return int(value) if isinstance(value, str) and ID_PATTERN.fullmatch(value) else None


def spare_protected_keys(case: Case, tenants: Tenants) -> None:
    if case.method.upper() != "GET" and path_id(case) in tenants.protected_ids:
        assert case.path_parameters is not None
        case.path_parameters["id"] = str(tenants.victim_id)


def key_row(key_id: int) -> dict[str, Any]:
    """The key as stored, less `last_used_at` (the owner's own calls move it)."""
    row = ApiKey.objects.filter(pk=key_id).values().get()
    return {name: value for name, value in row.items() if name != "last_used_at"}


def assert_closed_to_outsider(case: Case, tenants: Tenants, base_url: str) -> None:
    """The outsider's replay: nothing of the owner's comes back, an owner's id is a 404, nothing changes."""
    owned_id = path_id(case) if path_id(case) in tenants.owner_key_ids() else None
    before = key_row(owned_id) if owned_id is not None else None
    response = case.call(base_url=base_url, headers=auth(tenants.outsider.admin_key))

    assert response.status_code < 500, (curl(case, response), response.text)
    leaked = [secret for secret in tenants.owner_secrets() if secret in response.text]
    assert not leaked, (curl(case, response), response.text)
    if owned_id is not None and sent_method(response) == case.operation.method.upper():
        assert response.status_code == 404, (curl(case, response), response.text)
        assert key_row(owned_id) == before


def checks_named(names: frozenset[str]) -> list[CheckFunction]:
    return cast(list[CheckFunction], CHECKS.get_by_names(sorted(names)))


def check_case(case: Case, tenants: Tenants, base_url: str) -> None:
    spare_protected_keys(case, tenants)
    assert_closed_to_outsider(case, tenants, base_url)
    headers = auth(tenants.owner.admin_key)
    response = case.call(base_url=base_url, headers=headers)
    case.validate_response(
        response,
        headers=headers,
        excluded_checks=checks_named(frozenset({"positive_data_acceptance"})),
        transport_kwargs={"base_url": base_url, "headers": headers},
    )
    assert_valid_request_accepted(case, response)
    if response.status_code == 200 and "text/event-stream" in response.headers.get("content-type", [""])[0]:
        if case.operation.path == "/v1/responses":
            assert_a_whole_responses_stream(response)
        elif case.operation.path == "/v1/messages":
            assert_a_whole_messages_stream(response)
        else:
            assert_a_whole_stream(response)


# The tests

SETTINGS = hypothesis_settings(
    derandomize=True,
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@SCHEMA.parametrize()
@SETTINGS
def test_the_api_matches_its_document_and_keeps_tenants_apart(
    case: Case, platform_url: str, tenants: Tenants
) -> None:
    check_case(case, tenants, platform_url)


def make_case(path: str, operation_method: str, **data: Any) -> Case:
    """A case of the operation at `path` and `operation_method`; `method=` sends another method."""
    return SCHEMA[path][operation_method].Case(**data)


def test_an_outsider_gets_404_for_the_tenants_own_key_and_revokes_nothing(
    platform_url: str, tenants: Tenants
) -> None:
    for method in ("GET", "DELETE"):
        case = make_case("/api/v1/keys/{id}/", method, path_parameters={"id": str(tenants.victim_id)})
        check_case(case, tenants, platform_url)

    assert (
        key_row(tenants.victim_id)["revoked_at"] is not None
    )  # the owner's DELETE, after the outsider's 404


HUGE = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
NUL = "tenancy\x00isolation"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = "/v1/messages"
BATCHES = "/v1/batches"
KEYS = "/api/v1/keys/"
# (kind, path, body, the status it gets)
BAD_INPUT: list[tuple[str, str, dict[str, Any], int]] = [
    ("huge body", CHAT, {"model": "auto", "messages": [{"role": "user", "content": HUGE}]}, 413),
    ("huge body", EMBEDDINGS, {"model": "auto", "input": HUGE}, 413),
    ("huge body", KEYS, {"name": HUGE}, 413),
    (
        "huge body",
        MESSAGES,
        {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": HUGE}]},
        413,
    ),
    ("huge body", BATCHES, {"input_file_id": HUGE, "endpoint": CHAT, "completion_window": "24h"}, 413),
    ("NUL", CHAT, {"model": "auto", "messages": [{"role": "user", "content": NUL}]}, 400),
    ("NUL", CHAT, {"model": NUL, "messages": [{"role": "user", "content": "hi"}]}, 400),
    (
        "NUL",
        CHAT,
        {"model": "auto", "messages": [{"role": "user", "content": [{"type": "text", "text": NUL}]}]},
        400,
    ),
    ("NUL", EMBEDDINGS, {"model": "auto", "input": [NUL]}, 400),
    ("NUL", KEYS, {"name": NUL}, 400),
    (
        "NUL",
        MESSAGES,
        {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": NUL}]},
        400,
    ),
    ("NUL", BATCHES, {"input_file_id": NUL, "endpoint": CHAT, "completion_window": "24h"}, 400),
    ("wrong types", CHAT, {"model": 1, "messages": "hi"}, 400),
    ("wrong types", CHAT, {"model": "auto", "messages": [{"role": "user", "content": 5}]}, 400),
    ("wrong types", CHAT, {"model": "auto", "messages": [{"role": "user"}], "stream": "yes"}, 400),
    ("wrong types", EMBEDDINGS, {"model": "auto", "input": [1.5, 2]}, 400),
    ("wrong types", KEYS, {"name": ["a"], "scopes": "admin"}, 400),
    (
        "wrong types",
        MESSAGES,
        {"model": "auto", "max_tokens": "8", "messages": [{"role": "user", "content": "hi"}]},
        400,
    ),
    ("wrong types", BATCHES, {"input_file_id": 1, "endpoint": CHAT, "completion_window": "24h"}, 400),
]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [pytest.param(path, body, status, id=f"{kind} {path}") for kind, path, body, status in BAD_INPUT],
)
def test_bad_input_gets_a_documented_4xx(
    path: str, body: dict[str, Any], status: int, platform_url: str, tenants: Tenants
) -> None:
    case = make_case(path, "POST", body=body)
    headers = auth(tenants.owner.admin_key)
    response = case.call(base_url=platform_url, headers=headers)

    assert response.status_code == status, response.text[:500]
    case.validate_response(response, headers=headers, transport_kwargs={"base_url": platform_url})


@pytest.mark.parametrize("path", [CHAT, EMBEDDINGS, MESSAGES, BATCHES, KEYS])
def test_malformed_json_gets_a_documented_400(path: str, platform_url: str, tenants: Tenants) -> None:
    headers = {**auth(tenants.owner.admin_key), "Content-Type": "application/json"}
    response = httpx.post(f"{platform_url}{path}", content=b'{"model": "auto", ', headers=headers, timeout=10)

    assert response.status_code == 400, response.text
    make_case(path, "POST", body={}).validate_response(response, headers=headers)


@pytest.mark.parametrize("path", [CHAT, MESSAGES, BATCHES])
def test_a_body_not_labelled_json_gets_a_documented_415(
    path: str, platform_url: str, tenants: Tenants
) -> None:
    headers = {**auth(tenants.owner.admin_key), "Content-Type": "application/xml"}
    response = httpx.post(f"{platform_url}{path}", content=b"{}", headers=headers, timeout=10)

    assert response.status_code == 415, response.text
    make_case(path, "POST", body={}).validate_response(response, headers=headers)


MESSAGE = {"model": "sim-small", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}


def test_a_message_with_an_anthropic_key_header_matches_the_document(
    platform_url: str, tenants: Tenants
) -> None:
    headers = {"x-api-key": tenants.owner.admin_key, "anthropic-version": "2023-06-01", "Host": API_HOST}
    case = make_case(MESSAGES, "POST", body=MESSAGE)
    response = case.call_and_validate(base_url=platform_url, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no key"),
        pytest.param({"x-api-key": "aiaas_unknown_key"}, 401, id="unknown key"),
        pytest.param({"anthropic-version": "2023-01-01"}, 400, id="too old a version"),
    ],
)
def test_a_refused_message_is_anthropic_shaped_as_documented(
    headers: dict[str, str], status: int, platform_url: str, tenants: Tenants
) -> None:
    sent = {"Host": API_HOST, **headers}
    if "x-api-key" not in headers and status != 401:
        sent["x-api-key"] = tenants.owner.admin_key
    case = make_case(MESSAGES, "POST", body=MESSAGE)
    response = case.call(base_url=platform_url, headers=sent)

    assert response.status_code == status, response.text
    assert response.json()["type"] == "error"
    case.validate_response(response, headers=sent)


def test_unicode_is_answered_like_ascii(platform_url: str, tenants: Tenants) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "تعدد المستأجرين — 多租户 🏢\u2028"}]}
    case = make_case("/v1/chat/completions", "POST", body=body)
    response = case.call_and_validate(base_url=platform_url, headers=auth(tenants.owner.admin_key))

    assert response.status_code == 200
