"""/v1/files and /v1/vector_stores through the stock `openai` SDK, over the served
platform: the shapes the SDK parses, OpenAI's errors, and tenants kept apart."""

from __future__ import annotations

import io
from unittest.mock import ANY

import httpx
import openai
import pytest
from django.conf import settings
from pytest_django import Settings

from ingestion.tests.conftest import sdk
from tenants.services import create_api_key
from testing.database import committed
from testing.tenants import TenantFixture


def test_the_sdk_uploads_lists_retrieves_reads_and_deletes_a_file(owner: openai.OpenAI) -> None:
    content = b"# Runbook\n\nRestart the worker, then check the queue.\n"
    created = owner.files.create(file=("runbook.md", io.BytesIO(content)), purpose="user_data")

    assert created.id.startswith("file-")
    assert (created.object, created.filename, created.bytes, created.purpose, created.status) == (
        "file",
        "runbook.md",
        len(content),
        "user_data",
        "processed",
    )
    assert owner.files.retrieve(created.id) == created
    assert owner.files.content(created.id).read() == content
    listed = owner.files.list(purpose="user_data")
    assert created.id in [file.id for file in listed.data]
    assert all(file.purpose == "user_data" for file in listed.data)

    deleted = owner.files.delete(created.id)

    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError) as missing:
        owner.files.retrieve(created.id)
    assert missing.value.body == {
        "message": "No such file.",
        "type": "invalid_request_error",
        "code": "not_found",
        "param": None,
    }


def test_files_page_with_openais_cursors(owner: openai.OpenAI) -> None:
    ids = [
        owner.files.create(file=(f"page-{n}.txt", f"page {n}".encode()), purpose="batch").id for n in range(3)
    ]

    newest_first = [file.id for file in owner.files.list(purpose="batch", limit=2)]
    after = owner.files.list(purpose="batch", limit=100, after=ids[2])
    oldest_first = owner.files.list(purpose="batch", order="asc", limit=100)

    assert newest_first[:2] == [ids[2], ids[1]]
    assert [file.id for file in after.data][:2] == [ids[1], ids[0]]
    assert [file.id for file in oldest_first.data][-3:] == ids


@pytest.mark.parametrize(
    ("data", "files", "status", "param", "code"),
    [
        ({"purpose": "fine-tune-results"}, {"file": ("a.txt", b"x")}, 400, "purpose", "invalid_value"),
        ({}, {"file": ("a.txt", b"x")}, 400, "purpose", "missing_required_parameter"),
        ({"purpose": "assistants"}, None, 400, "file", "missing_required_parameter"),
        ({"purpose": "assistants"}, {"file": ("empty.txt", b"")}, 400, "file", "invalid_value"),
    ],
    ids=["unknown purpose", "no purpose", "no file", "empty file"],
)
def test_bad_uploads_are_refused_in_openais_shape(
    platform_url: str,
    serving_tenant: TenantFixture,
    data: dict[str, str],
    files: dict[str, tuple[str, bytes]] | None,
    status: int,
    param: str,
    code: str,
) -> None:
    response = httpx.post(
        f"{platform_url}/v1/files",
        data=data,
        files=files or {"other": ("a.txt", b"x")},
        headers={"Authorization": f"Bearer {serving_tenant.admin_key}", "Host": settings.BASE_DOMAIN},
        timeout=10,
    )

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


def test_an_upload_over_the_size_limit_is_refused(owner: openai.OpenAI, settings: Settings) -> None:
    settings.INGESTION_MAX_FILE_BYTES = 1000

    with pytest.raises(openai.APIStatusError) as refused:
        owner.files.create(file=("big.txt", b"x" * 1001), purpose="assistants")

    assert refused.value.status_code == 413
    assert refused.value.body == {
        "message": "the file is over the limit of 1000 bytes",
        "type": "invalid_request_error",
        "code": "file_too_large",
        "param": "file",
    }


def test_a_key_without_the_inference_scope_is_refused(
    platform_url: str, serving_tenant: TenantFixture
) -> None:
    read_only = committed(lambda: create_api_key(serving_tenant.tenant, name="files read", scopes=["read"]))

    for call in (
        sdk(platform_url, read_only.secret).files.list,
        sdk(platform_url, read_only.secret).vector_stores.list,
    ):
        with pytest.raises(openai.PermissionDeniedError):
            call()


def test_another_tenants_key_gets_404_on_every_route(
    owner: openai.OpenAI, outsider: openai.OpenAI, uploaded: str, embedding_model: str
) -> None:
    store = owner.vector_stores.create(name="private", file_ids=[uploaded])
    calls = {
        "files.retrieve": lambda: outsider.files.retrieve(uploaded),
        "files.content": lambda: outsider.files.content(uploaded),
        "files.delete": lambda: outsider.files.delete(uploaded),
        "vector_stores.retrieve": lambda: outsider.vector_stores.retrieve(store.id),
        "vector_stores.update": lambda: outsider.vector_stores.update(store.id, name="taken"),
        "vector_stores.search": lambda: outsider.vector_stores.search(store.id, query="tenancy"),
        "vector_stores.delete": lambda: outsider.vector_stores.delete(store.id),
        "files.list": lambda: outsider.vector_stores.files.list(store.id),
        "files.create": lambda: outsider.vector_stores.files.create(store.id, file_id=uploaded),
        "files.retrieve in a store": lambda: outsider.vector_stores.files.retrieve(
            uploaded, vector_store_id=store.id
        ),
        "files.content in a store": lambda: outsider.vector_stores.files.content(
            uploaded, vector_store_id=store.id
        ),
        "files.delete in a store": lambda: outsider.vector_stores.files.delete(
            uploaded, vector_store_id=store.id
        ),
    }
    answers: dict[str, tuple[int, object]] = {}
    for name, call in calls.items():
        try:
            call()
        except openai.APIStatusError as error:
            answers[name] = (error.status_code, error.body)
        else:
            answers[name] = (200, None)

    not_found = {"message": ANY, "type": "invalid_request_error", "code": "not_found", "param": None}
    assert answers == dict.fromkeys(calls, (404, not_found))
    assert uploaded not in [file.id for file in outsider.files.list()]
    assert store.id not in [listed.id for listed in outsider.vector_stores.list()]
    assert owner.vector_stores.retrieve(store.id).name == "private"
    assert owner.vector_stores.files.retrieve(uploaded, vector_store_id=store.id).id == uploaded
    assert owner.files.content(uploaded).read().startswith(b"# Notes")
    owner.vector_stores.delete(store.id)
