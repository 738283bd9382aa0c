"""An Idempotency-Key on the /v1 POSTs Django serves (files, vector stores and their
files) works as on the gateway's: a retry gets the first answer, the same key with
another body 422, another tenant's same key runs on its own. Through the stock
`openai` SDK over the served platform."""

from __future__ import annotations

import uuid

import openai
import pytest

from ingestion.tests.conftest import sdk
from testing.tenants import TenantFixture


def idempotency(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def test_a_retried_upload_stores_one_file(owner: openai.OpenAI) -> None:
    key = f"upload-{uuid.uuid4()}"
    content = f"notes {key}".encode()

    first = owner.files.with_raw_response.create(
        file=("notes.txt", content), purpose="user_data", extra_headers=idempotency(key)
    )
    retry = owner.files.with_raw_response.create(
        file=("notes.txt", content), purpose="user_data", extra_headers=idempotency(key)
    )

    assert retry.parse().id == first.parse().id
    assert retry.headers["idempotent-replayed"] == "true"
    assert [file.id for file in owner.files.list(purpose="user_data", limit=100)].count(first.parse().id) == 1


def test_the_same_key_for_another_upload_is_422(owner: openai.OpenAI) -> None:
    key = f"upload-{uuid.uuid4()}"
    owner.files.create(file=("a.txt", b"first"), purpose="user_data", extra_headers=idempotency(key))

    with pytest.raises(openai.UnprocessableEntityError) as refused:
        owner.files.create(file=("a.txt", b"second"), purpose="user_data", extra_headers=idempotency(key))

    assert refused.value.code == "idempotency_key_mismatch"


def test_a_retried_vector_store_and_its_file_are_created_once(
    owner: openai.OpenAI, ingestion_worker: str
) -> None:
    key = f"store-{uuid.uuid4()}"
    store = owner.vector_stores.create(name="idempotent", extra_headers=idempotency(key))
    again = owner.vector_stores.with_raw_response.create(name="idempotent", extra_headers=idempotency(key))
    file_id = owner.files.create(file=("a.md", b"# A\n\nText.\n"), purpose="assistants").id

    attach = idempotency(f"attach-{uuid.uuid4()}")
    attached = owner.vector_stores.files.create(store.id, file_id=file_id, extra_headers=attach)
    reattached = owner.vector_stores.files.create(store.id, file_id=file_id, extra_headers=attach)

    assert again.parse().id == store.id
    assert again.headers["idempotent-replayed"] == "true"
    assert reattached.id == attached.id
    with pytest.raises(openai.UnprocessableEntityError):
        owner.vector_stores.create(name="another", extra_headers=idempotency(key))


def test_another_tenant_using_the_same_key_gets_its_own_store(
    owner: openai.OpenAI, platform_url: str, other_tenant: TenantFixture
) -> None:
    key = f"store-{uuid.uuid4()}"
    mine = owner.vector_stores.create(name="mine", extra_headers=idempotency(key))

    theirs = sdk(platform_url, other_tenant.admin_key).vector_stores.with_raw_response.create(
        name="mine", extra_headers=idempotency(key)
    )

    assert theirs.parse().id != mine.id
    assert "idempotent-replayed" not in theirs.headers
    with pytest.raises(openai.NotFoundError):
        sdk(platform_url, other_tenant.admin_key).vector_stores.retrieve(mine.id)
