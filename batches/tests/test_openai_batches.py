"""/v1/batches through the stock `openai` SDK over the served platform, run by a real
Celery worker: the shapes the SDK parses, output and error files, tenants kept apart."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Final

import openai
import pytest
from openai.types import Batch

CHAT: Final = "/v1/chat/completions"
EMBEDDINGS: Final = "/v1/embeddings"


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def chat_line(custom_id: str, text: str, model: str = "sim-small") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def upload(client: openai.OpenAI, rows: list[dict[str, Any]]) -> str:
    return client.files.create(file=("batch.jsonl", jsonl(rows)), purpose="batch").id


def finished(client: openai.OpenAI, batch_id: str, timeout: float = 60.0) -> Batch:
    deadline = time.monotonic() + timeout
    batch = client.batches.retrieve(batch_id)
    while batch.status not in ("completed", "failed", "cancelled", "expired") and time.monotonic() < deadline:
        time.sleep(0.1)
        batch = client.batches.retrieve(batch_id)
    return batch


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(row) for row in client.files.content(file_id).text.splitlines()]


def test_a_chat_batch_runs_to_completed_with_output_and_error_files(
    owner: openai.OpenAI, batches_worker: str
) -> None:
    bad = {"custom_id": "bad", "method": "POST", "url": CHAT, "body": {"model": "sim-small"}}
    rows = [chat_line("a", "Say hello."), bad, chat_line("c", "Name a colour.")]
    created = owner.batches.create(
        input_file_id=upload(owner, rows), endpoint=CHAT, completion_window="24h", metadata={"job": "nightly"}
    )

    assert created.id.startswith("batch_")
    assert (created.object, created.endpoint, created.status, created.metadata) == (
        "batch",
        CHAT,
        "validating",
        {"job": "nightly"},
    )
    batch = finished(owner, created.id)

    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        3,
        2,
        1,
    )
    assert None not in (batch.in_progress_at, batch.finalizing_at, batch.completed_at, batch.expires_at)
    assert batch.expires_at is not None
    assert batch.expires_at - batch.created_at == 24 * 3600
    output = lines_of(owner, batch.output_file_id)
    assert [line["custom_id"] for line in output] == ["a", "c"]
    first = output[0]
    assert first["id"].startswith("batch_req_")
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["object"] == "chat.completion"
    assert first["response"]["body"]["choices"][0]["message"]["content"]
    assert first["response"]["request_id"].startswith(f"req_{batch.id}_")
    errors = lines_of(owner, batch.error_file_id)
    assert [(line["custom_id"], line["response"]["status_code"]) for line in errors] == [("bad", 400)]
    assert errors[0]["response"]["body"]["error"]["param"] == "messages"
    assert owner.files.retrieve(batch.output_file_id).purpose == "batch_output"  # type: ignore[arg-type]
    assert created.id in [listed.id for listed in owner.batches.list(limit=100)]


def test_an_embeddings_batch_answers_each_line(owner: openai.OpenAI, batches_worker: str) -> None:
    rows = [
        {
            "custom_id": f"e{n}",
            "method": "POST",
            "url": EMBEDDINGS,
            "body": {"model": "local-embed", "input": f"text {n}"},
        }
        for n in range(3)
    ]
    created = owner.batches.create(
        input_file_id=upload(owner, rows), endpoint=EMBEDDINGS, completion_window="24h"
    )

    batch = finished(owner, created.id)

    assert batch.status == "completed", batch
    assert batch.error_file_id is None
    output = lines_of(owner, batch.output_file_id)
    assert [line["custom_id"] for line in output] == ["e0", "e1", "e2"]
    assert all(line["response"]["body"]["data"][0]["embedding"] for line in output)


def test_an_output_file_larger_than_an_upload_may_be_is_written(
    owner: openai.OpenAI, batches_worker: str, settings: Any
) -> None:
    """The upload limit bounds what tenants send: 256 floats a line outgrow the input
    file many times (10,000 such lines are about 50 MB), and the batch must still end."""
    rows = [
        {
            "custom_id": f"e{n}",
            "method": "POST",
            "url": EMBEDDINGS,
            "body": {"model": "local-embed", "input": "x"},
        }
        for n in range(3)
    ]
    settings.INGESTION_MAX_FILE_BYTES = len(jsonl(rows))
    created = owner.batches.create(
        input_file_id=upload(owner, rows), endpoint=EMBEDDINGS, completion_window="24h"
    )

    batch = finished(owner, created.id)

    assert batch.status == "completed", batch
    assert owner.files.retrieve(batch.output_file_id).bytes > settings.INGESTION_MAX_FILE_BYTES  # type: ignore[arg-type]
    assert [line["custom_id"] for line in lines_of(owner, batch.output_file_id)] == ["e0", "e1", "e2"]


def test_an_invalid_input_file_fails_the_batch_with_openais_errors(owner: openai.OpenAI) -> None:
    rows = [
        chat_line("same", "one"),
        chat_line("same", "two"),
        {**chat_line("x", "three"), "url": EMBEDDINGS},
        {**chat_line("y", "four"), "method": "GET"},
    ]
    content = jsonl(rows) + b"{not json\n"
    file_id = owner.files.create(file=("bad.jsonl", content), purpose="batch").id

    batch = owner.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")

    assert (batch.status, batch.failed_at is not None) == ("failed", True)
    assert batch.errors is not None
    assert batch.errors.object == "list"
    assert [(error.code, error.param, error.line) for error in batch.errors.data or []] == [
        ("duplicate_custom_id", "custom_id", 2),
        ("mismatched_endpoint", "url", 3),
        ("invalid_method", "method", 4),
        ("invalid_json_line", None, 5),
    ]


def test_create_refuses_what_openai_refuses(owner: openai.OpenAI) -> None:
    assistants = owner.files.create(file=("a.txt", b"text"), purpose="assistants").id
    batch_file = upload(owner, [chat_line("a", "hi")])

    with pytest.raises(openai.BadRequestError) as wrong_purpose:
        owner.batches.create(input_file_id=assistants, endpoint=CHAT, completion_window="24h")
    with pytest.raises(openai.BadRequestError) as responses:
        owner.batches.create(input_file_id=batch_file, endpoint="/v1/responses", completion_window="24h")
    with pytest.raises(openai.BadRequestError) as window:
        owner.batches.create(input_file_id=batch_file, endpoint=CHAT, completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        owner.batches.create(input_file_id="file-missing", endpoint=CHAT, completion_window="24h")
    with pytest.raises(openai.BadRequestError) as unknown:
        owner.batches.create(
            input_file_id=batch_file, endpoint=CHAT, completion_window="24h", extra_body={"priority": "high"}
        )

    assert wrong_purpose.value.body["param"] == "input_file_id"  # type: ignore[index]
    assert responses.value.body["param"] == "endpoint"  # type: ignore[index]
    assert window.value.body["param"] == "completion_window"  # type: ignore[index]
    assert unknown.value.body["param"] == "priority"  # type: ignore[index]
    assert unknown.value.body["code"] == "unrecognized_request_argument"  # type: ignore[index]
    assert "Unrecognized request argument supplied: priority" in unknown.value.body["message"]  # type: ignore[index]


def test_cancel_answers_cancelling_at_once(owner: openai.OpenAI, settings: Any) -> None:
    # A queue no worker reads: a worker another test left running would otherwise
    # finish the one-line batch before the cancel reaches it.
    settings.BATCHES_QUEUE = f"unread-{uuid.uuid4().hex}"
    created = owner.batches.create(
        input_file_id=upload(owner, [chat_line("a", "hi")]), endpoint=CHAT, completion_window="24h"
    )

    cancelling = owner.batches.cancel(created.id)

    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None


def test_a_cancel_reaches_the_worker(owner: openai.OpenAI, batches_worker: str, settings: Any) -> None:
    """The create's delivery goes to a queue no worker reads, so only the cancel's own
    delivery reaches the worker, which ends the batch before calling any line."""
    settings.BATCHES_QUEUE = f"{batches_worker}-unread"
    created = owner.batches.create(
        input_file_id=upload(owner, [chat_line(f"l{n}", f"line {n}") for n in range(5)]),
        endpoint=CHAT,
        completion_window="24h",
    )
    settings.BATCHES_QUEUE = batches_worker
    owner.batches.cancel(created.id)

    batch = finished(owner, created.id)

    assert batch.status == "cancelled", batch
    assert batch.cancelled_at is not None
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        5,
        0,
        0,
    )
    assert (batch.output_file_id, batch.error_file_id) == (None, None)


def test_another_tenants_key_gets_404_on_every_batches_route(
    owner: openai.OpenAI, outsider: openai.OpenAI
) -> None:
    created = owner.batches.create(
        input_file_id=upload(owner, [chat_line("a", "hi")]), endpoint=CHAT, completion_window="24h"
    )
    file_id = upload(owner, [chat_line("b", "hi")])

    for call in (
        lambda: outsider.batches.retrieve(created.id),
        lambda: outsider.batches.cancel(created.id),
        lambda: outsider.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert created.id not in [batch.id for batch in outsider.batches.list(limit=100)]
    assert owner.batches.retrieve(created.id).status != "cancelling"


def test_a_retried_create_with_an_idempotency_key_starts_one_batch(
    owner: openai.OpenAI, batches_worker: str
) -> None:
    headers = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    input_file_id = upload(owner, [chat_line("a", "Say hello.")])

    first = owner.batches.create(
        input_file_id=input_file_id, endpoint=CHAT, completion_window="24h", extra_headers=headers
    )
    retry = owner.batches.with_raw_response.create(
        input_file_id=input_file_id, endpoint=CHAT, completion_window="24h", extra_headers=headers
    )

    assert retry.parse().id == first.id
    assert retry.headers["idempotent-replayed"] == "true"
    assert [batch.id for batch in owner.batches.list(limit=100)].count(first.id) == 1
